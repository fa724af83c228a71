"""Start a real ``siftline serve`` process on 127.0.0.1 (end-to-end tests and benchmarks)."""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def siftline(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI (``python -m siftline …``) and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "siftline", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


class Server:
    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        env: dict[str, str] | None = None,
        module: str = "siftline",
    ) -> None:
        """``env`` is merged over ``os.environ`` for the server process (e.g. ``SIFTLINE_*`` settings);
        ``module`` is what ``python -m`` runs (``siftline.testing.slow_stage``: the CLI with a test stage that
        waits, so executions can be watched while they run)."""
        self.data_dir = data_dir
        self.module = module
        self.port = port or free_port()
        self.env = dict(env or {})
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Server:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                self.module,
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **self.env},
        )
        self._drain()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._drained.join(timeout=5)
                err = "\n".join(self.stderr_tail)
                raise RuntimeError(f"siftline serve exited with {self.proc.returncode}: {err}")
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError("siftline serve did not answer /v1/health in time")

    def _drain(self) -> None:
        """Read the server's stderr in a thread, keeping the last lines (``stderr_tail``): a pipe nobody
        reads fills up (64 KB) and then blocks the server the next time it logs."""
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=200)
        stream = self.proc.stderr if self.proc else None

        def run() -> None:
            if stream is not None:
                for line in iter(stream.readline, b""):
                    self.stderr_tail.append(line.decode(errors="replace").rstrip())

        self._drained = threading.Thread(target=run, name="server-stderr", daemon=True)
        self._drained.start()

    def stop(self) -> None:
        """Graceful stop (SIGTERM, as a service manager would)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start_with_key(
    data_dir: Path, port: int | None = None, env: dict[str, str] | None = None, module: str = "siftline"
) -> tuple[Server, str]:
    """A started server over ``data_dir`` and a fresh unlimited API key for it (made by the CLI); ``env``
    goes to both processes, ``module`` as in :class:`Server`."""
    server = Server(data_dir, port, env, module).start()
    done = siftline("keys", "create", "--data-dir", str(data_dir), env=env)
    if done.returncode != 0:
        server.kill()
        raise RuntimeError(f"siftline keys create failed: {done.stderr}")
    return server, done.stdout.strip().splitlines()[-1]
