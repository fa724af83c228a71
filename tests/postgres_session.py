"""One local PostgreSQL for a whole test session (``SIFTLINE_TEST_STORAGE=postgres``): started on first
use, stopped when the process exits; each caller gets a database of its own."""

from __future__ import annotations

import atexit
import threading
import uuid

import psycopg

from siftline.storage.postgres.local import LocalPostgres

# A throwaway cluster: nothing to keep across an OS crash. With fsync on, the shutdown checkpoint of a
# suite's hundreds of databases synced some 70,000 files and outlasted pg_ctl's 60 s stop (CI log).
TEST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
_cluster: LocalPostgres | None = None
_lock = threading.Lock()


def cluster() -> LocalPostgres:
    global _cluster
    with _lock:
        if _cluster is None:
            _cluster = LocalPostgres(**TEST_SETTINGS).start()
            atexit.register(_cluster.stop)
        return _cluster


_by_place: dict[str, str] = {}


def database_url(place: str) -> str:
    """The database standing for ``place`` (a test's data directory): created the first time, the same
    one after (a test that reopens its data directory finds its data, as after a restart)."""
    with _lock:
        known = _by_place.get(place)
    if known is not None:
        return known
    url = fresh_database_url()
    with _lock:
        return _by_place.setdefault(place, url)


def fresh_database_url() -> str:
    running = cluster()
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(running.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql://postgres@/{name}?host={running.root}&port={running.port}"
