"""Telemetry without HTTP: registries apart, the storage gauges' cache and failures, a bad record."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from siftline.models import ExecutionRecord, StorageFigures, utcnow
from siftline.service.telemetry import Telemetry


def values(telemetry: Telemetry) -> dict[str, float]:
    text = telemetry.render().decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


def record(**detail: Any) -> ExecutionRecord:
    rec = ExecutionRecord("exec_1", "ns_1", "ret_1", "saved", "completed", utcnow())
    rec.detail = detail
    return rec


def test_two_telemetries_share_no_counter() -> None:
    a, b = Telemetry(lambda: StorageFigures(0, 0, 0, 0)), Telemetry(lambda: StorageFigures(0, 0, 0, 0))
    a.observe_execution(record(credits_used=2.5, warnings=["w"]), {})
    assert (
        values(a)["siftline_credits_used_total"] == 2.5
        and values(a)["siftline_execution_warnings_total"] == 1
    )
    assert (
        values(b)["siftline_credits_used_total"] == 0 and values(b)["siftline_execution_warnings_total"] == 0
    )


def test_no_created_series_are_served() -> None:
    telemetry = Telemetry(lambda: StorageFigures(0, 0, 0, 0))
    telemetry.observe_request("GET", "/v1/health", 200, 0.001)
    assert b"_created" not in telemetry.render()


def test_the_storage_figures_are_read_at_most_once_per_ttl() -> None:
    reads: list[int] = []

    def figures() -> StorageFigures:
        reads.append(1)
        return StorageFigures(len(reads), 10 * len(reads), 3, 1)

    kept = Telemetry(figures, figures_ttl_s=60)
    first, second = values(kept), values(kept)
    assert len(reads) == 1 and first == second
    assert (first["siftline_collections"], first["siftline_documents"]) == (1, 10)
    assert (first["siftline_vectors_pending"], first["siftline_index_builds_running"]) == (3, 1)

    fresh = Telemetry(figures, figures_ttl_s=0)
    values(fresh)
    assert values(fresh)["siftline_collections"] == 3  # read again on every scrape


def test_a_storage_that_cannot_answer_leaves_out_the_gauges_only() -> None:
    def figures() -> StorageFigures:
        raise RuntimeError("the database is away")

    telemetry = Telemetry(figures)
    telemetry.observe_execution(record(credits_used=1.0), {})
    served = values(telemetry)
    assert served["siftline_credits_used_total"] == 1.0
    assert "siftline_collections" not in served and "siftline_documents" not in served


def test_a_malformed_record_never_raises() -> None:
    telemetry = Telemetry(lambda: StorageFigures(0, 0, 0, 0))
    telemetry.observe_execution(record(stage_statistics={"stages": {"s": "not a dict"}}), {})
    telemetry.observe_execution(record(stage_statistics=[], optimization_summary="odd", warnings=None), {})
    assert values(telemetry)["siftline_credits_used_total"] == 0
