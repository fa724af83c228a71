"""How many relation locks a PostgreSQL backend's read transactions hold (tests and benchmarks)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from siftline.storage.postgres.backend import PostgresStorage


@contextlib.contextmanager
def counting_locks(storage: PostgresStorage, held: list[int]) -> Iterator[None]:
    """Within the block, each read transaction of ``storage`` appends to ``held`` the relation locks it
    holds at its end (the planner locks every relation, and every index of a table, it plans over)."""
    real = storage.db.read

    @contextlib.contextmanager
    def read() -> Iterator[Any]:
        with real() as conn:
            yield conn
            held.append(
                conn.execute(
                    "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation'"
                ).fetchone()[0]
            )

    storage.db.read = read  # type: ignore[method-assign]
    try:
        yield
    finally:
        storage.db.read = real  # type: ignore[method-assign]
