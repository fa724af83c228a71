"""Background upkeep every server runs: failing the work of servers that are gone, record retention.

Every ``interval_s`` seconds (and once at start-up, before requests are served) a thread takes each
job's lease from storage and, when it holds it, runs the job; when another server holds it, it skips
that round. With several servers over one PostgreSQL database that means one server at a time fails
the executions and evaluations left unfinished by a dead server (which storage recognises by its
stopped heartbeat) and applies retention; with the embedded backend this server is the only one.
"""

from __future__ import annotations

import logging
import threading

from siftline.errors import StorageError
from siftline.service import evaluations
from siftline.service.records import Recorder
from siftline.storage.base import Storage

log = logging.getLogger(__name__)


class Maintenance:
    def __init__(self, storage: Storage, recorder: Recorder, interval_s: float) -> None:
        self.storage = storage
        self.recorder = recorder
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, at_start: bool = False) -> None:
        with self.storage.lease("recovery") as held:
            if held:
                self.recorder.recover()
                evaluations.recover(self.storage)
        # leased in the recorder; at most once a minute (RETENTION_EVERY_S) but at start: a pass
        # rewrites the executions table, too much for every round
        self.recorder.apply_retention(force=at_start)

    def start(self) -> None:
        """Start the periodic rounds (once: later calls do nothing)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="siftline-maintenance", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.run_once()
            except StorageError as exc:  # the database is away: the next round tries again
                log.warning("maintenance skipped a round: %s", exc)
            except Exception:
                log.exception("maintenance round failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
