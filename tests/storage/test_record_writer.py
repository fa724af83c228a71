"""The execution-record writer: saves gathered into one commit, visible at once, never waited for long."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from siftline.storage.sqlite import record_writer
from siftline.storage.sqlite.record_writer import RecordWriter


class Rows:
    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.lock = threading.Lock()

    def __call__(self, rows: list[Any]) -> None:
        with self.lock:
            self.batches.append(list(rows))


def test_saves_that_arrive_together_share_one_commit() -> None:
    rows = Rows()
    writer = RecordWriter(rows)
    try:
        for i in range(20):
            writer.put(f"exec_{i}", (f"exec_{i}", "done"))
        writer.flush()
        assert sorted(r[0] for batch in rows.batches for r in batch) == sorted(f"exec_{i}" for i in range(20))
        assert len(rows.batches) <= 2  # the first save may be taken alone; the rest wait in the window
    finally:
        writer.close()


def test_a_later_save_of_one_record_replaces_the_queued_one() -> None:
    rows = Rows()
    writer = RecordWriter(rows)
    try:
        writer.put("exec_a", ("exec_a", "processing"))
        writer.put("exec_a", ("exec_a", "completed"))
        writer.flush()
        committed = [r for batch in rows.batches for r in batch]
        assert committed[-1] == ("exec_a", "completed")
    finally:
        writer.close()


def test_a_queued_save_is_readable_and_a_flush_does_not_wait_out_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(record_writer, "WINDOW", 30.0)  # a window no test could sit out
    rows = Rows()
    writer = RecordWriter(rows)
    try:
        writer.put("exec_q", ("exec_q", "completed"))
        time.sleep(0.05)
        assert rows.batches == [] and writer.lookup("exec_q") == ("exec_q", "completed")
        t0 = time.monotonic()
        writer.flush()
        assert time.monotonic() - t0 < 5 and rows.batches == [[("exec_q", "completed")]]
        assert writer.lookup("exec_q") is None  # committed: the database has it
    finally:
        writer.close()


def test_close_commits_what_is_queued(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record_writer, "WINDOW", 30.0)
    rows = Rows()
    writer = RecordWriter(rows)
    writer.put("exec_c", ("exec_c", "completed"))
    t0 = time.monotonic()
    writer.close()
    assert time.monotonic() - t0 < 5 and rows.batches == [[("exec_c", "completed")]]
