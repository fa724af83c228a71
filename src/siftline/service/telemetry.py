"""Prometheus metrics of one running Siftline: every metric is defined here, in a registry of its own.

Each ``Services`` (one per app) has one :class:`Telemetry` with its own ``CollectorRegistry``, not
prometheus-client's global one, so several apps in one process (tests) never share counters. It is
told of

- every HTTP request (``observe_request``, from the ASGI middleware in ``api/telemetry.py``), by route
  template, never the raw path: label values stay bounded;
- every finished execution (``observe_execution``, the ``Recorder``'s observer), read from its record:
  the same figures the execution's response carries;

and reads the storage's figures (collections, documents, vectors pending, index builds) when scraped,
kept ``figures_ttl_s`` seconds between scrapes. The names and labels are listed in docs/METRICS.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from siftline.models import ExecutionRecord, StorageFigures
from siftline.pipeline.runner import CREDITS_EXCEEDED, TIME_EXCEEDED

log = logging.getLogger("siftline.telemetry")

UNMATCHED = "unmatched"  # the route label of a request no route matched (a 404)
UNKNOWN_STAGE = "unknown"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # any other: "other"
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)  # fmt: skip


class Telemetry:
    def __init__(self, figures: Callable[[], StorageFigures], figures_ttl_s: float = 5.0) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "siftline_http_requests", "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"], registry=r,
        )  # fmt: skip
        self.http_duration = Histogram(
            "siftline_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by method, route template and status.",
            ["method", "route", "status"], buckets=HTTP_BUCKETS, registry=r,
        )  # fmt: skip
        self.executions = Counter(
            "siftline_executions", "Retriever executions finished, by mode (saved | adhoc) and status.",
            ["mode", "status"], registry=r,
        )  # fmt: skip
        self.execution_duration = Histogram(
            "siftline_execution_duration_seconds", "Execution time (stage_statistics.total_time_ms).",
            ["mode", "status"], buckets=HTTP_BUCKETS, registry=r,
        )  # fmt: skip
        self.stage_duration = Histogram(
            "siftline_stage_duration_seconds", "Time of each stage that ran, by stage id.",
            ["stage_id"], buckets=STAGE_BUCKETS, registry=r,
        )  # fmt: skip
        self.stage_in = Counter(
            "siftline_stage_documents_in", "Documents stages received (input_count), by stage id.",
            ["stage_id"], registry=r,
        )  # fmt: skip
        self.stage_out = Counter(
            "siftline_stage_documents_out", "Documents stages passed on (output_count), by stage id.",
            ["stage_id"], registry=r,
        )  # fmt: skip
        self.searches = Counter(
            "siftline_searches", "Searches run by feature_search stages, by index path (hnsw | exact | bm25).",
            ["path"], registry=r,
        )  # fmt: skip
        self.cache = Counter(
            "siftline_cache_lookups",
            "Cache lookups by cache (result | stage | embedding) and outcome (hit | miss).",
            ["cache", "outcome"], registry=r,
        )  # fmt: skip
        self.credits = Counter("siftline_credits_used", "Credits executions used.", registry=r)
        self.budget_stops = Counter(
            "siftline_budget_stops", "Executions a budget stopped, by the limit reached (credits | time).",
            ["limit"], registry=r,
        )  # fmt: skip
        self.rules = Counter(
            "siftline_optimizer_rules_applied",
            "Executions whose plan an optimizer rule rewrote, by rule (optimization_summary.rules_applied).",
            ["rule"], registry=r,
        )  # fmt: skip
        self.warnings = Counter(
            "siftline_execution_warnings", "Warnings returned with executions.", registry=r
        )
        r.register(_StorageGauges(figures, figures_ttl_s))

    def render(self) -> bytes:
        """The registry in Prometheus's text format (``CONTENT_TYPE_LATEST``), without the ``*_created``
        series prometheus-client adds to each counter and histogram (the text format shows them as
        gauges of their own; Prometheus needs none of them)."""
        return generate_latest(_WithoutCreated(self.registry))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method if method in METHODS else "other", route, str(status))
        self.http_requests.labels(*labels).inc()
        self.http_duration.labels(*labels).observe(seconds)

    def observe_execution(self, record: ExecutionRecord, stage_ids: Mapping[str, str]) -> None:
        """A finished execution: its record (``detail`` holds the whole response) and the stage id of
        each stage name that ran. Never raises: metrics must not fail an execution."""
        try:
            self._execution(record, stage_ids)
        except Exception:
            log.exception("recording the metrics of execution %s failed", record.execution_id)

    def _execution(self, record: ExecutionRecord, stage_ids: Mapping[str, str]) -> None:
        detail = record.detail
        mode, status = record.mode, record.status
        self.executions.labels(mode, status).inc()
        self.execution_duration.labels(mode, status).observe(_number(detail.get("duration_ms")) / 1000)
        self.credits.inc(max(0.0, _number(detail.get("credits_used"))))
        self.warnings.inc(len(detail.get("warnings") or ()))
        error = detail.get("error")
        if error in (CREDITS_EXCEEDED, TIME_EXCEEDED):  # the runner's budget stops
            self.budget_stops.labels("time" if error == TIME_EXCEEDED else "credits").inc()
        cache_status = detail.get("cache_status")
        if cache_status in ("hit", "miss"):
            self.cache.labels("result", cache_status).inc()
        if cache_status == "hit":  # no stage ran: the statistics are those of the run that was cached
            return
        for rule in (detail.get("optimization_summary") or {}).get("rules_applied") or ():
            self.rules.labels(str(rule)).inc()
        stages: dict[str, Any] = (detail.get("stage_statistics") or {}).get("stages") or {}
        for name, stage in stages.items():
            self._stage(stage_ids.get(name, UNKNOWN_STAGE), stage)

    def _stage(self, stage_id: str, stage: dict[str, Any]) -> None:
        self.stage_duration.labels(stage_id).observe(_number(stage.get("duration_ms")) / 1000)
        self.stage_in.labels(stage_id).inc(max(0.0, _number(stage.get("input_count"))))
        self.stage_out.labels(stage_id).inc(max(0.0, _number(stage.get("output_count"))))
        self.cache.labels("stage", "hit" if stage.get("stage_cache_hit") else "miss").inc()
        for search in (stage.get("metadata") or {}).get("searches") or ():
            if not isinstance(search, dict):
                continue
            if isinstance(search.get("path"), str):
                self.searches.labels(search["path"]).inc()
            if search.get("embedding_cache") in ("hit", "miss"):
                self.cache.labels("embedding", search["embedding_cache"]).inc()


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


class _WithoutCreated:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        for metric in self.registry.collect():  # each collection builds its metrics afresh
            metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric


class _StorageGauges:
    """The storage's figures as gauges, read when scraped and kept ``ttl_s`` seconds; a scrape while the
    storage cannot answer leaves the gauges out (the counters are still served)."""

    def __init__(self, figures: Callable[[], StorageFigures], ttl_s: float) -> None:
        self._figures = figures
        self._ttl_s = ttl_s
        self._kept: tuple[float, StorageFigures] | None = None
        self._lock = threading.Lock()

    def _current(self) -> StorageFigures | None:
        with self._lock:  # one reading at a time; the scrapes meanwhile take it
            now = time.monotonic()
            if self._kept is not None and now - self._kept[0] < self._ttl_s:
                return self._kept[1]
            try:
                figures = self._figures()
            except Exception:
                log.warning("reading the storage's figures for /metrics failed", exc_info=True)
                return None
            self._kept = (now, figures)
            return figures

    def describe(self) -> Iterable[Metric]:
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        figures = self._current()
        return self._families(figures) if figures is not None else []

    @staticmethod
    def _families(figures: StorageFigures | None) -> list[Metric]:
        rows = [
            ("siftline_collections", "Collections in every namespace.", "collections"),
            ("siftline_documents", "Documents in every collection.", "documents"),
            ("siftline_vectors_pending", "Vectors written but not yet in an HNSW index.", "vectors_pending"),
            ("siftline_index_builds_running", "HNSW index builds this server runs now.", "index_builds"),
        ]
        return [
            GaugeMetricFamily(name, doc, value=None if figures is None else getattr(figures, field))
            for name, doc, field in rows
        ]
