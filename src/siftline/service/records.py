"""Execution records: written by the executor as a run starts, progresses and ends; read by the API.

A record is saved when the run passes ``PROGRESS_AFTER_S`` (``processing``: current stage, stages
completed, statistics so far), at every stage event after that mark, and when it ends; so a fast run
costs one write and a slow one can be followed from another client. A server that dies
mid-run leaves ``processing`` records behind; ``recover`` marks them failed at the next start.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

import orjson

from siftline.models import ExecutionRecord, iso, utcnow
from siftline.storage.base import Storage

PROGRESS_AFTER_S = 0.05  # runs faster than this are saved once (at the end); slower ones at every event
SERVER_STOPPED = (
    "Retriever execution failed: the server stopped while this execution was running; execute it again."
)
RETENTION_EVERY_S = 60.0
log = logging.getLogger("siftline.records")
# Told of every finished execution, recorded or not (the metrics): its record, whose detail holds the
# whole response, and the stage id of each stage name that ran. It must not raise.
Observer = Callable[[ExecutionRecord, dict[str, str]], None]


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, raw UTF-8 (orjson; the standard library for integers past 64 bits)."""
    try:
        return orjson.dumps(
            value, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY
        ).decode()
    except TypeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def inputs_hash(inputs: dict[str, Any]) -> str:
    """SHA-1 of the canonical JSON of the inputs (sorted keys, no spaces)."""
    return hashlib.sha1(canonical_json(inputs).encode()).hexdigest()


def query_summary(inputs: dict[str, Any], limit: int = 120) -> str | None:
    text = next((v for k, v in inputs.items() if k in ("query", "text", "q") and isinstance(v, str)), None)
    if text is None:
        text = next((v for v in inputs.values() if isinstance(v, str)), None)
    return None if text is None else (text if len(text) <= limit else text[: limit - 1] + "…")


class _Marks:
    """One thread that calls each due callback once (instead of a timer thread per execution)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cond = threading.Condition()
        self._count = 0
        self._thread: threading.Thread | None = None

    def add(self, due: float, callback: Callable[[], None]) -> None:
        with self._cond:
            self._count += 1
            heapq.heappush(self._heap, (due, self._count, callback))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="siftline-progress", daemon=True)
                self._thread.start()
            if self._heap[0][1] == self._count:  # a new earliest mark: wake the thread to wait for it
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                _, _, callback = heapq.heappop(self._heap)
            try:
                callback()
            except Exception:  # a failed progress save must not stop later ones
                log.exception("saving an execution's progress failed")


_MARKS = _Marks()


class Tracker:
    """One run's record, kept current as the run goes."""

    def __init__(self, recorder: Recorder, record: ExecutionRecord) -> None:
        self.recorder = recorder
        self.record = record
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._finished = False
        self._stage_ids: dict[str, str] = {}  # stage name → stage id, from the run's events (the observer's)
        _MARKS.add(self._started + PROGRESS_AFTER_S, self._flush)  # a run still going then shows up

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        with self._lock:  # the progress mark may be saving the record right now
            self._apply(kind, data)
        if time.monotonic() - self._started >= PROGRESS_AFTER_S:
            self._flush()

    def _apply(self, kind: str, data: dict[str, Any]) -> None:
        detail = self.record.detail
        if "stage_id" in data and "stage_name" in data:
            self._stage_ids[data["stage_name"]] = data["stage_id"]
        if kind == "stage_start":
            detail["current_stage"] = data["stage_name"]
        elif kind in ("stage_complete", "stage_error"):
            detail["stages_completed"] = detail.get("stages_completed", 0) + (kind == "stage_complete")
            stats = detail.setdefault("stage_statistics", {"stages": {}})
            if kind == "stage_complete":
                stats["stages"][data["stage_name"]] = {
                    k: v for k, v in data.items() if k not in ("stage_name", "stage_id", "stage_index")
                }

    def _flush(self) -> None:
        with self._lock:
            if not self._finished:
                self.recorder.save(self.record)

    def finish(self, response: dict[str, Any], documents: list[dict[str, Any]]) -> None:
        with self._lock:
            self._finished = True
            self._finish(response, documents)
        if self.recorder.observer is not None:
            self.recorder.observer(self.record, self._stage_ids)

    def _finish(self, response: dict[str, Any], documents: list[dict[str, Any]]) -> None:
        record = self.record
        record.status = response["status"]
        record.completed_at = utcnow()
        detail = record.detail
        detail.update({k: v for k, v in response.items() if k != "documents"})
        detail["completed_at"] = iso(record.completed_at)
        detail["current_stage"] = None
        stats = response.get("stage_statistics") or {}
        stages = stats.get("stages") or {}
        detail["stages_completed"] = sum(1 for s in stages.values() if not s.get("error"))
        detail["duration_ms"] = stats.get("total_time_ms", 0.0)
        detail["credits_used"] = stats.get("credits_used", 0.0)
        detail["total_processed"] = sum(int(s.get("input_count", 0)) for s in stages.values())
        hits = [bool(s.get("stage_cache_hit")) for s in stages.values()]
        detail["cache_hit_rate"] = (sum(hits) / len(hits)) if hits else 0.0
        detail["total_returned"] = len(documents)
        retain = self.recorder.retain_documents
        record.documents = documents if retain else None
        detail["documents_retained"] = retain
        self.recorder.save(record)
        self.recorder.apply_retention()


class Recorder:
    def __init__(
        self,
        storage: Storage,
        enabled: bool = True,
        keep_last: int | None = None,
        keep_days: float | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.storage = storage
        self.observer = observer
        self.enabled = enabled
        self.keep_last = keep_last
        self.keep_days = keep_days
        self._last_retention = 0.0

    @property
    def retain_documents(self) -> bool:
        return self.keep_last != 0 and self.keep_days != 0

    def save(self, record: ExecutionRecord) -> None:
        if self.enabled:
            self.storage.save_execution(record)

    def start(
        self,
        *,
        execution_id: str,
        namespace_id: str,
        retriever_id: str | None,
        collection_ids: list[str],
        total_stages: int,
        inputs: dict[str, Any],
        request: dict[str, Any],
        interpretation: dict[str, Any],
    ) -> Tracker:
        now = utcnow()
        mode: Literal["saved", "adhoc"] = "saved" if retriever_id else "adhoc"
        owner = self.storage.server_id
        record = ExecutionRecord(
            execution_id, namespace_id, retriever_id, mode, "processing", now, owner=owner
        )
        record.detail = {
            "execution_id": execution_id,
            "retriever_id": retriever_id or "",
            "execution_mode": mode,
            "status": "processing",
            "created_at": iso(now),
            "timestamp": iso(now),
            "completed_at": None,
            "current_stage": None,
            "stages_completed": 0,
            "total_stages": total_stages,
            "collection_ids": collection_ids,
            "inputs": canonical_json(inputs),
            "inputs_hash": inputs_hash(inputs),
            "query_summary": query_summary(inputs),
            "request": request,
            "interpretation": interpretation,
            "warnings": [],
            "limits": [],
            "degraded": [],
            "optimization_applied": False,
            "optimization_summary": None,
            "learned_fusion_context": None,
            "cached_at": None,
        }
        return Tracker(self, record)

    def apply_retention(self, force: bool = False) -> int:
        if not self.enabled or (self.keep_last is None and self.keep_days is None):
            return 0
        if not force and time.monotonic() - self._last_retention < RETENTION_EVERY_S:
            return 0
        self._last_retention = time.monotonic()
        before = utcnow() - timedelta(days=self.keep_days) if self.keep_days is not None else None
        with self.storage.lease("retention") as held:  # one server at a time
            return self.storage.drop_documents(self.keep_last, before) if held else 0

    def recover(self) -> int:
        """No record may stay ``processing`` after the server that ran it is gone: at start-up and then
        periodically (``service/maintenance.py``)."""
        return self.storage.fail_unfinished(SERVER_STOPPED)
