"""Reading execution records: the detail views of the seed documents, lists, status and profile."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from siftline.errors import NotFoundError, ValidationError
from siftline.models import ExecutionRecord, Namespace, iso
from siftline.storage.base import Storage

DETAIL_FIELDS = (
    "retriever_id", "execution_id", "status", "degraded", "limits", "documents", "pagination",
    "stage_statistics", "facets", "budget", "cached_at", "warnings", "interpretation", "error",
    "optimization_applied", "optimization_summary", "learned_fusion_context", "created_at", "completed_at",
    "current_stage", "stages_completed", "total_stages", "documents_retained", "total_returned",
    "cache_hit", "cache_status", "cache_bypass_reason", "cached_from_execution_id", "cache_hit_rate",
)  # fmt: skip
ADHOC_FIELDS = (
    "execution_id", "execution_mode", "status", "timestamp", "duration_ms", "credits_used", "total_processed",
    "total_returned", "cache_hit_rate", "query_summary", "stages_completed", "total_stages", "collection_ids",
    "inputs", "inputs_hash", "cache_hit", "cached_at", "cached_from_execution_id", "optimization_applied",
)  # fmt: skip
SUMMARY_FIELDS = (
    "execution_id", "status", "created_at", "completed_at", "duration_ms", "credits_used", "total_processed",
    "total_returned", "cache_hit_rate", "inputs_hash", "query_summary",
)  # fmt: skip
_NUMERIC_DEFAULTS = {"duration_ms": 0.0, "credits_used": 0.0, "total_processed": 0, "total_returned": 0}


def _base(record: ExecutionRecord) -> dict[str, Any]:
    detail = dict(record.detail)
    detail["status"] = record.status
    detail["created_at"] = iso(record.created_at)
    detail["completed_at"] = iso(record.completed_at) if record.completed_at else None
    for key, default in _NUMERIC_DEFAULTS.items():
        if detail.get(key) is None:
            detail[key] = default
    return detail


def execution_detail(record: ExecutionRecord, include_legacy_results: bool = False) -> dict[str, Any]:
    """ExecutionDetail: every field of the seed contract; ``results`` only when asked, then = documents."""
    detail = _base(record)
    out = {key: detail.get(key) for key in DETAIL_FIELDS}
    out["documents"] = record.documents if record.documents is not None else []
    out["documents_retained"] = record.documents is not None
    out["stage_statistics"] = detail.get("stage_statistics") or {
        "stages": {},
        "total_time_ms": 0.0,
        "credits_used": 0.0,
    }
    out["pagination"] = detail.get("pagination") or {}
    out["budget"] = detail.get("budget") or {}
    for key in ("warnings", "limits", "degraded"):
        out[key] = detail.get(key) or []
    out["optimization_applied"] = bool(detail.get("optimization_applied"))
    if out["error"] is None:
        del out["error"]
    # only on executions run with explain: true, analyzed by POST …/execute/explain, or replays
    for key in ("explain_plan", "explain_analyze", "replay_of"):
        if detail.get(key) is not None:
            out[key] = detail[key]
    if include_legacy_results:
        out["results"] = out["documents"]
    return out


def adhoc_detail(record: ExecutionRecord) -> dict[str, Any]:
    detail = _base(record)
    out = {key: detail.get(key) for key in ADHOC_FIELDS}
    out["execution_mode"] = "adhoc"
    if record.status == "failed":
        out["error"] = detail.get("error")
    return out


def summary(record: ExecutionRecord) -> dict[str, Any]:
    detail = _base(record)
    out = {key: detail.get(key) for key in SUMMARY_FIELDS}
    if record.mode == "adhoc":
        out.update({"execution_mode": "adhoc", "timestamp": detail.get("timestamp"), "collection_ids":
                    detail.get("collection_ids"), "stages_completed": detail.get("stages_completed", 0),
                    "total_stages": detail.get("total_stages", 0)})  # fmt: skip
    return out


def status_view(record: ExecutionRecord) -> dict[str, Any]:
    detail = _base(record)
    keys = ("execution_id", "retriever_id", "status", "current_stage", "stages_completed", "total_stages",
            "created_at", "completed_at")  # fmt: skip
    out = {key: detail.get(key) for key in keys}
    if record.status == "failed":
        out["error"] = detail.get("error")
    return out


def stage_rows(stage_statistics: dict[str, Any]) -> list[dict[str, Any]]:
    """Each stage that ran, in order: its time, counts, credits, cache hit, optimizer fold and error (the
    profile of a record, and the ``explain_plan`` of an execution run with ``explain: true``)."""
    return [
        {
            "stage_name": name,
            "duration_ms": s.get("duration_ms", 0.0),
            "input_count": s.get("input_count", 0),
            "output_count": s.get("output_count", 0),
            "efficiency": s.get("efficiency", 0.0),
            "credits": (s.get("metadata") or {}).get("credits"),
            "stage_cache_hit": bool(s.get("stage_cache_hit")),
            "optimized": (s.get("metadata") or {}).get("optimized"),
            "error": s.get("error"),
        }
        for name, s in (stage_statistics.get("stages") or {}).items()
    ]


def profile_view(record: ExecutionRecord) -> dict[str, Any]:
    """Per-stage timings and counts of one run, slowest stage named."""
    stages = stage_rows(record.detail.get("stage_statistics") or {})
    total = sum(s["duration_ms"] for s in stages)
    for s in stages:
        s["share_of_time"] = round(s["duration_ms"] / total, 4) if total else 0.0
    slowest = max(stages, key=lambda s: s["duration_ms"], default=None)
    return {
        "execution_id": record.execution_id,
        "retriever_id": record.retriever_id,
        "status": record.status,
        "stages": stages,
        "total_time_ms": (record.detail.get("stage_statistics") or {}).get("total_time_ms", total),
        "bottleneck_stage": slowest["stage_name"] if slowest else None,
    }


def find(
    storage: Storage, namespace: Namespace, execution_id: str, retriever_id: str | None
) -> ExecutionRecord:
    """The record of this namespace (and retriever, or ad hoc when ``retriever_id`` is None), else 404."""
    record = storage.get_execution(namespace.namespace_id, execution_id)
    if (
        record is None
        or (retriever_id is None and record.mode != "adhoc")
        or (retriever_id is not None and record.retriever_id != retriever_id)
    ):
        kind = "ad-hoc execution" if retriever_id is None else f"execution of retriever '{retriever_id}'"
        raise NotFoundError(f"No {kind} '{execution_id}' in namespace '{namespace.namespace_name}'.")
    return record


def find_any(storage: Storage, namespace: Namespace, execution_id: str) -> ExecutionRecord:
    """The record of this namespace, saved or ad hoc, else 404 (another namespace's ids are unknown)."""
    record = storage.get_execution(namespace.namespace_id, execution_id)
    if record is None:
        raise NotFoundError(f"No execution '{execution_id}' in namespace '{namespace.namespace_name}'.")
    return record


def _time(value: Any, loc: str) -> datetime | None:
    if value is None:
        return None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)  # times without an offset are UTC
    except (ValueError, OverflowError, OSError) as exc:
        raise ValidationError.at(
            ["body", loc], "a time is ISO-8601 (2026-01-31T12:00:00Z) or Unix seconds"
        ) from exc


def list_filters(body: dict[str, Any]) -> dict[str, Any]:
    """status (one or a list), start_time/end_time (also created_after/created_before)."""
    status = body.get("status") or (body.get("filters") or {}).get("status")
    statuses = [status] if isinstance(status, str) else status
    if statuses is not None and not (
        isinstance(statuses, list) and all(isinstance(s, str) for s in statuses)
    ):
        raise ValidationError.at(["body", "status"], "status is a status or a list of them")
    if statuses:
        statuses = ["processing" if s == "running" else s for s in statuses]
    return {
        "statuses": statuses,
        "since": _time(body.get("start_time", body.get("created_after")), "start_time"),
        "until": _time(body.get("end_time", body.get("created_before")), "end_time"),
    }
