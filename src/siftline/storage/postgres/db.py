"""The PostgreSQL database under the PostgreSQL backend: a connection pool, start-up checks, migrations.

Opening it checks what a misconfiguration would otherwise turn into failed requests later, and stops
with a message naming the fix: the server cannot be reached, the credentials are refused, the
database does not exist, PostgreSQL is older than 15, pgvector is missing or older than 0.8, or the
role may not create the extension. Then the versioned migrations (``migrations.py``) not applied yet
are applied in order, each in its own transaction, under a transaction-scoped advisory lock so that
servers starting together apply each migration once.

Connections come from a psycopg 3 pool (``psycopg_pool``); :meth:`Database.read` and
:meth:`Database.write` hand out one for a block and translate PostgreSQL errors into
:class:`~siftline.errors.StorageError`, as the SQLite backend does.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

from siftline.errors import StorageError, StorageUnavailableError
from siftline.storage.postgres.migrations import MIGRATIONS, Migration

MIN_SERVER = 150000  # PostgreSQL 15 (server_version_num)
MIN_PGVECTOR = (0, 8, 0)
MIGRATION_LOCK = 0x5F1F71E  # the advisory lock key servers take to apply migrations one at a time


class ConfigurationError(StorageError):
    """The database cannot be used as configured; the message says what to change."""


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def _connect_error(url: str, exc: Exception) -> ConfigurationError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = detail.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        fix = "check the user and password in SIFTLINE_POSTGRES_URL"
    elif "does not exist" in lowered and "database" in lowered:
        fix = "create the database (createdb <name>) or name an existing one in SIFTLINE_POSTGRES_URL"
    elif "role" in lowered and "does not exist" in lowered:
        fix = "create the role, or name an existing user in SIFTLINE_POSTGRES_URL"
    else:
        fix = (
            "check that PostgreSQL runs and that the host and port in SIFTLINE_POSTGRES_URL reach it "
            "(for a local try: make serve-postgres)"
        )
    return ConfigurationError(f"Cannot connect to PostgreSQL at {_redacted(url)}: {detail}. Fix: {fix}.")


def _redacted(url: str) -> str:
    """The URL without its password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class Database:
    def __init__(self, url: str, min_size: int = 1, max_size: int = 10, timeout_s: float = 10.0) -> None:
        import psycopg

        self.url = url
        self.timeout_s = timeout_s
        try:  # fail fast with one direct connection: the pool would retry in the background instead
            with psycopg.connect(url, connect_timeout=max(1, int(timeout_s)), autocommit=True) as conn:
                self._check(conn)
        except psycopg.OperationalError as exc:
            raise _connect_error(url, exc) from None
        self._pool_size = (min_size, max_size)
        self._pool_lock = threading.Lock()
        self._unavailable_since: float | None = None  # when requests began to fail for want of the database
        self._last_probe = 0.0
        self._last_returned: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        self.pool = self._new_pool()
        self.migrate()

    def _new_pool(self) -> Any:
        from psycopg_pool import ConnectionPool

        min_size, max_size = self._pool_size
        return ConnectionPool(
            self.url,
            min_size=min_size,
            max_size=max_size,
            timeout=self.timeout_s,  # a request waits this long for a connection, then gets a 503
            kwargs={"autocommit": True, "connect_timeout": max(1, int(self.timeout_s))},
            check=self._check_connection,  # a connection broken by a restart is replaced, not used
            reset=self._returned,
            open=True,
            name="siftline",
        )

    def _returned(self, conn: Any) -> None:
        self._last_returned[conn] = time.monotonic()

    def _check_connection(self, conn: Any) -> None:
        """The pool's check before handing out a connection (one round trip), skipped for a connection
        returned within the last second: requests come in streams, and a restart of PostgreSQL takes
        longer than that (a connection broken anyway fails its request with a 503, and the pool is
        renewed)."""
        from psycopg_pool import ConnectionPool

        if time.monotonic() - self._last_returned.get(conn, 0.0) > 1.0:
            ConnectionPool.check_connection(conn)

    def _recover(self) -> None:
        """After the database was unreachable: once a direct connection succeeds again, swap in a fresh
        pool and close the old one in the background (the old pool's reconnection back-off doubles each
        attempt, so it could stay away for minutes after the database is back). One probe a second."""
        import psycopg

        with self._pool_lock:
            if self._unavailable_since is None or time.monotonic() - self._last_probe < 1.0:
                return
            self._last_probe = time.monotonic()
            try:
                psycopg.connect(self.url, connect_timeout=2, autocommit=True).close()
            except psycopg.Error:
                return  # still away
            old, self.pool = self.pool, self._new_pool()
            self._unavailable_since = None
        threading.Thread(target=old.close, kwargs={"timeout": 5}, daemon=True).start()

    # -- start-up checks -------------------------------------------------------------------------

    def _check(self, conn: Any) -> None:
        server = int(conn.execute("SHOW server_version_num").fetchone()[0])
        if server < MIN_SERVER:
            shown = conn.execute("SHOW server_version").fetchone()[0]
            raise ConfigurationError(
                f"PostgreSQL {shown} is too old: Siftline needs PostgreSQL 15 or newer. Fix: upgrade the "
                "server, or point SIFTLINE_POSTGRES_URL at a newer one."
            )
        row = conn.execute(
            "SELECT default_version, installed_version FROM pg_available_extensions WHERE name = %s",
            (self.extension,),
        ).fetchone()
        if row is None:
            raise ConfigurationError(
                f"The PostgreSQL server has no pgvector extension ('{self.extension}' is not available). "
                "Fix: install pgvector 0.8 or newer on the server (https://github.com/pgvector/pgvector#"
                "installation, or the postgresql-<version>-pgvector package), then restart Siftline."
            )
        available, installed = row
        if installed is None:
            try:
                conn.execute(f"CREATE EXTENSION IF NOT EXISTS {self.extension}")
            except Exception as exc:  # psycopg.errors.InsufficientPrivilege and kin
                raise ConfigurationError(
                    f"pgvector is installed on the server but not enabled in this database, and this role "
                    f"may not enable it ({str(exc).strip().splitlines()[0]}). Fix: run "
                    f"'CREATE EXTENSION {self.extension};' once as a superuser in this database."
                ) from None
            installed = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = %s", (self.extension,)
            ).fetchone()[0]
        if _version(installed) < MIN_PGVECTOR:
            needed = ".".join(map(str, MIN_PGVECTOR))
            hint = (
                f"ALTER EXTENSION {self.extension} UPDATE;"
                if _version(available) >= MIN_PGVECTOR
                else f"install pgvector {needed} or newer on the server, then ALTER EXTENSION {self.extension} UPDATE;"
            )
            raise ConfigurationError(
                f"pgvector {installed} is too old: Siftline needs {needed} or newer (iterative index "
                f"scans for filtered searches). Fix: {hint}"
            )

    extension = "vector"  # pgvector's extension name

    # -- migrations ------------------------------------------------------------------------------

    def migrate(self, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
        """Apply the migrations not applied yet, in order; returns the versions applied now."""
        applied_now: list[int] = []
        with self.pool.connection() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS siftline_migrations ("
                "version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for migration in migrations:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                    done = conn.execute(
                        "SELECT 1 FROM siftline_migrations WHERE version = %s", (migration.version,)
                    ).fetchone()
                    if done:
                        continue
                    conn.execute(migration.sql)
                    conn.execute(
                        "INSERT INTO siftline_migrations(version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
                    applied_now.append(migration.version)
        return applied_now

    def applied(self) -> list[int]:
        with self.read() as conn:
            return [r[0] for r in conn.execute("SELECT version FROM siftline_migrations ORDER BY version")]

    # -- connections -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def read(self) -> Iterator[Any]:
        """A connection whose statements run in one REPEATABLE READ snapshot (``BEGIN ISOLATION LEVEL
        REPEATABLE READ READ ONLY``: one round trip, not two)."""
        import psycopg

        with self._translated("read"), self.pool.connection() as conn:
            conn.isolation_level, conn.read_only = psycopg.IsolationLevel.REPEATABLE_READ, True
            try:
                with conn.transaction():
                    yield conn
            finally:
                if not conn.closed:
                    conn.isolation_level, conn.read_only = None, False

    @contextlib.contextmanager
    def write(self) -> Iterator[Any]:
        """A connection inside one transaction: committed on success, rolled back on any error."""
        with self._translated("write"), self.pool.connection() as conn, conn.transaction():
            yield conn

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        """A connection outside any transaction, each statement its own (and its own snapshot): for
        single-statement lookups (no BEGIN and COMMIT round trips) and session-level locks."""
        with self._translated("session"), self.pool.connection() as conn:
            yield conn

    @contextlib.contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        """PostgreSQL's errors as the error tree's: unreachable → 503 (StorageUnavailableError)."""
        import psycopg
        from psycopg_pool import PoolTimeout

        if self._unavailable_since is not None:
            self._recover()
        try:
            yield
        except (  # lost to a concurrent transaction: the database is fine
            psycopg.errors.TransactionRollback,
            psycopg.errors.DeadlockDetected,
            psycopg.errors.SerializationFailure,
        ) as exc:
            raise StorageUnavailableError(
                f"The database {what} conflicted with a concurrent change ({type(exc).__name__}) and was "
                "rolled back: nothing was changed; retry the request."
            ) from exc
        except (psycopg.OperationalError, PoolTimeout) as exc:
            with self._pool_lock:
                if self._unavailable_since is None:
                    self._unavailable_since = time.monotonic()
            raise StorageUnavailableError(
                f"The database is unavailable ({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}); "
                "the request was not carried out: retry in a few seconds."
            ) from exc
        except psycopg.Error as exc:
            raise StorageError(f"Database {what} failed: {exc}") from exc

    def close(self) -> None:
        self.pool.close()
