"""The WAL checkpointer beside a long reader (``siftline backup`` copies the database inside one snapshot):
writes go on, held back at most ``TRUNCATE_WAIT_MS`` now and then, and the log empties once the reader ends."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from siftline.storage.sqlite import db as db_module
from siftline.storage.sqlite.db import Database


def test_a_long_reader_holds_writes_back_briefly_and_the_log_empties_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "CHECKPOINT_WAL_BYTES", 256 << 10)
    monkeypatch.setattr(db_module, "RESTART_WAL_BYTES", 1 << 20)
    monkeypatch.setattr(db_module, "TRUNCATE_WAIT_MS", 200)
    monkeypatch.setattr(db_module, "TRUNCATE_BACKOFF_S", (0.5, 1.0))
    path = tmp_path / "siftline.db"
    db = Database(path, busy_timeout_ms=5000)
    try:
        with db.write() as conn:
            conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM t").fetchone()  # a snapshot held, as a backup's copy does
        worst, start = 0.0, time.monotonic()
        while time.monotonic() - start < 2.5:
            began = time.monotonic()
            with db.write() as conn:
                conn.execute("INSERT INTO t(v) VALUES (randomblob(200000))")
            worst = max(worst, time.monotonic() - began)
        wal = Path(f"{path}-wal")
        assert wal.stat().st_size > 4 << 20  # the reader kept the log from starting over
        assert worst < 1.0, f"a write waited {worst:.2f} s (the busy timeout is 5 s)"
        reader.execute("COMMIT")
        reader.close()
        deadline = time.monotonic() + 10
        while wal.stat().st_size >= 1 << 20 and time.monotonic() < deadline:  # a write a while: TRUNCATE runs
            with db.write() as conn:
                conn.execute("INSERT INTO t(v) VALUES (x'00')")
            time.sleep(0.1)
        assert wal.stat().st_size < 1 << 20
    finally:
        db.close()
