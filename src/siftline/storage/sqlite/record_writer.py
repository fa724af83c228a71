"""Execution records written behind the requests: one background thread commits them in batches.

Every execution saves its record at least once; written inline, each save is a transaction that takes
the database's single write lock, so under concurrent load the searches queue behind each other's
record writes (measured: the largest share of the load benchmark's server time was threads waiting
for that lock). Instead a save hands the row to this writer and returns; the writer commits
everything queued so far in one transaction (group commit), so many executions share one lock hold
and one commit. Several saves of one record before a commit (processing, then completed) collapse
into the last. Once a save arrives the writer gathers for ``WINDOW`` seconds before it commits, and the
saves in that time do not wake it: a wake-up and a transaction per execution cost a lone client's search
0.3-0.5 ms of its ~2.5 (the writer thread takes the GIL and the CPU in the middle of the next search).

Readers see their writes: reading one record looks in the queue first (:meth:`lookup`); every other
read of the executions table first waits for the rows queued before it (:meth:`flush`), and so do
statements that delete records. A process that dies loses at most the
records of the last ``WINDOW`` (10 ms); records still ``processing`` are failed at the next start, as
before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("siftline.records")

Row = tuple[Any, ...]
WINDOW = 0.01  # seconds a batch gathers saves before its commit


class RecordWriter:
    def __init__(self, write_rows: Callable[[list[Row]], None]) -> None:
        self._write_rows = write_rows
        self._cond = threading.Condition()
        self._pending: dict[str, Row] = {}
        self._writing: dict[str, Row] = {}  # taken by the writer, not committed yet
        self._queued = 0  # saves handed over so far
        self._done = 0  # saves committed (or given up on) so far
        self._closed = False
        self._gathering = False  # inside a batch's window: saves need not wake the writer
        self._hurry = False  # a flush waits: commit what is queued now
        self._thread = threading.Thread(target=self._run, name="siftline-records", daemon=True)
        self._thread.start()

    def put(self, execution_id: str, row: Row) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the record writer is closed")
            self._pending[execution_id] = row
            self._queued += 1
            if not self._gathering:
                self._cond.notify_all()

    def lookup(self, execution_id: str) -> Row | None:
        """The newest row saved for ``execution_id`` that may not be committed yet; None means every save
        of it (if any) is committed, so the database has it."""
        with self._cond:
            return self._pending.get(execution_id) or self._writing.get(execution_id)

    def flush(self) -> None:
        """Return once every save handed over before this call is committed."""
        with self._cond:
            target = self._queued
            if self._done < target:
                self._hurry = True
                self._cond.notify_all()
            while self._done < target and self._thread.is_alive():
                self._cond.wait(1.0)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending and self._closed:
                    return
                self._gathering, deadline = True, time.monotonic() + WINDOW
                while not self._closed and not self._hurry and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
                self._gathering = self._hurry = False
                self._writing, self._pending = self._pending, {}
                upto = self._queued
            try:
                self._write_rows(list(self._writing.values()))
            except Exception:  # the requests are answered already: say so loudly, keep going
                log.exception("writing %d execution records failed; they are lost", len(self._writing))
            with self._cond:
                self._writing = {}
                self._done = upto
                self._cond.notify_all()
