"""Naming the server an open storage is, and leasing background jobs within one process.

Both backends name their server the same way: host, process id and a random part. The embedded backend
is served by one process, but a CLI command may open its data directory beside it, so
:class:`LocalServers` counts a server alive while its process runs on this host (another host's
cannot be checked, and counts alive), and leases jobs with locks of this process (a CLI command runs
no background job). The PostgreSQL backend lists the servers sharing its database with heartbeats and
leases jobs with advisory locks (``storage/postgres/servers.py``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
from collections.abc import Iterator


def new_server_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def process_alive(server_id: str) -> bool:
    """Whether the process a server id names still runs (one of another host counts alive; a storage
    this process opened before, and closed, is gone)."""
    host, _, rest = server_id.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname():
        return True
    if pid == str(os.getpid()):
        return False
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return False
    return True


class LocalServers:
    """One server: this process. Its leases are non-blocking locks, one per job."""

    def _init_servers(self) -> None:
        self.server_id = new_server_id()
        self._leases: dict[str, threading.Lock] = {}
        self._leases_lock = threading.Lock()

    def server_alive(self, server_id: str | None) -> bool:
        if server_id is None:
            return False
        if server_id == self.server_id:
            return True
        return process_alive(server_id)

    @contextlib.contextmanager
    def lease(self, job: str) -> Iterator[bool]:
        with self._leases_lock:
            lock = self._leases.setdefault(job, threading.Lock())
        held = lock.acquire(blocking=False)
        try:
            yield held
        finally:
            if held:
                lock.release()
