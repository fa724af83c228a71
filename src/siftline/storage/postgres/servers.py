"""The Siftline servers sharing one database, and the leases of their background jobs.

Each open :class:`~siftline.storage.postgres.backend.PostgresStorage` is a server: it registers a row
in ``servers`` and refreshes its heartbeat every ``lease_s / 5`` seconds from a thread of its own. A
server whose heartbeat is older than ``lease_s`` is gone (killed, its host lost, or cut off from the
database that long): recovery fails the execution records and evaluation runs it owned. A graceful
stop deletes the row at once. Rows silent for a day are pruned.

A background job (recovery, retention) runs inside :meth:`lease`: a session-level advisory lock taken
without waiting on a pooled connection and released when the block ends, so one server at a time runs
each job; a server that dies mid-job releases it with its connection.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

from siftline.errors import StorageError
from siftline.storage.postgres.db import Database
from siftline.storage.servers import new_server_id

log = logging.getLogger(__name__)

JOB_LOCKS = 0x5F1B  # the first key of the two-key advisory locks that lease jobs (the second: the job)
PRUNE_AFTER = "1 day"  # a server row silent this long is deleted


class ServersMixin:
    db: Database

    def _init_servers(self, lease_s: float) -> None:
        self.server_id = new_server_id()
        self.lease_s = lease_s
        self._heartbeat_stop = threading.Event()
        self._heartbeat()  # registered before it runs anything
        self._heartbeat_thread = threading.Thread(
            target=self._heartbeat_loop, name="siftline-heartbeat", daemon=True
        )
        self._heartbeat_thread.start()

    def _heartbeat(self) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO servers(server_id, host, pid) VALUES (%s, %s, %s) "
                "ON CONFLICT (server_id) DO UPDATE SET heartbeat_at = now()",
                (self.server_id, socket.gethostname(), os.getpid()),
            )
            conn.execute(f"DELETE FROM servers WHERE heartbeat_at < now() - interval '{PRUNE_AFTER}'")

    def _heartbeat_loop(self) -> None:
        while not self._heartbeat_stop.wait(self.lease_s / 5):
            try:
                self._heartbeat()
            except StorageError as exc:  # the database is away: the next beat registers again
                log.warning("heartbeat failed: %s", exc)

    def _close_servers(self) -> None:
        self._heartbeat_stop.set()
        self._heartbeat_thread.join(timeout=5)
        with contextlib.suppress(StorageError), self.db.write() as conn:
            conn.execute("DELETE FROM servers WHERE server_id = %s", (self.server_id,))

    def server_alive(self, server_id: str | None) -> bool:
        if server_id is None:
            return False
        if server_id == self.server_id:
            return True
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT heartbeat_at > now() - make_interval(secs => %s) FROM servers WHERE server_id = %s",
                (self.lease_s, server_id),
            ).fetchone()
        return bool(row and row[0])

    def gone_owner_sql(self) -> tuple[str, tuple[Any, ...]]:
        """A condition on a column ``owner`` true when its server is gone (or it has none), with its
        parameters: this server never counts as gone, even when its own heartbeat lags."""
        return (
            "(owner IS NULL OR (owner <> %s AND NOT EXISTS (SELECT 1 FROM servers s WHERE "
            "s.server_id = owner AND s.heartbeat_at > now() - make_interval(secs => %s))))",
            (self.server_id, self.lease_s),
        )

    @contextlib.contextmanager
    def lease(self, job: str) -> Iterator[bool]:
        with self.db.session() as conn:
            held = bool(
                conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (JOB_LOCKS, job)).fetchone()[0]
            )
            try:
                yield held
            finally:
                if held:
                    with contextlib.suppress(Exception):  # a broken connection released it already
                        conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (JOB_LOCKS, job))
