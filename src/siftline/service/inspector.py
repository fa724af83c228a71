"""What the execution inspector (``/ui``) reads: execution records of one namespace, sorted and paged, with
the names of the retrievers and collections they mention, and the plan an execution ran.

Every read is scoped to the session's namespace: a record of another namespace is not found.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from siftline.models import ExecutionRecord, Namespace
from siftline.storage.base import Storage

STATUSES = ("pending", "processing", "completed", "failed")
MODES = ("saved", "adhoc")
# Storage lists newest first; another order is made here over the newest SORT_WINDOW matching records
# (the page says so when more match): sorting by a value inside the record's JSON detail needs no index.
SORT_WINDOW = 1000
_NAMES_MAX = 1000


def _detail_number(key: str) -> Callable[[ExecutionRecord], float]:
    return lambda r: float(r.detail.get(key) or 0)


SORT_KEYS: dict[str, Callable[[ExecutionRecord], Any]] = {
    "time": lambda r: r.created_at,
    "retriever": lambda r: (r.mode, r.retriever_id or ""),  # by name in list_executions
    "status": lambda r: STATUSES.index(r.status) if r.status in STATUSES else len(STATUSES),
    "duration": _detail_number("duration_ms"),
    "credits": _detail_number("credits_used"),
    "processed": _detail_number("total_processed"),
    "returned": _detail_number("total_returned"),
    "cache": lambda r: (bool(r.detail.get("cache_hit")), float(r.detail.get("cache_hit_rate") or 0)),
    "warnings": lambda r: len(r.detail.get("warnings") or []),
}


@dataclass(frozen=True)
class ListQuery:
    retriever_id: str | None = None
    mode: str | None = None
    statuses: tuple[str, ...] | None = None
    since: datetime | None = None
    until: datetime | None = None
    sort: str = "time"
    descending: bool = True
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class ListPage:
    records: list[ExecutionRecord]
    total: int
    windowed: bool  # sorted among the newest SORT_WINDOW matching records only


def list_executions(storage: Storage, namespace: Namespace, query: ListQuery) -> ListPage:
    """One page of the namespace's records matching ``query`` (without their documents)."""
    filters: dict[str, Any] = {
        "retriever_id": query.retriever_id,
        "mode": query.mode,
        "statuses": list(query.statuses) if query.statuses else None,
        "since": query.since,
        "until": query.until,
    }
    if query.sort == "time" and query.descending:
        found, total = storage.list_executions(
            namespace.namespace_id, limit=query.limit, offset=query.offset, **filters
        )
        return ListPage(found, total, False)
    found, total = storage.list_executions(namespace.namespace_id, limit=SORT_WINDOW, offset=0, **filters)
    key = SORT_KEYS.get(query.sort, SORT_KEYS["time"])
    if query.sort == "retriever":  # by name, ad hoc executions apart
        names = retriever_names(storage, namespace)
        key = lambda r: (r.mode, names.get(r.retriever_id or "", r.retriever_id or "").lower())  # noqa: E731
    ordered = sorted(found, key=key, reverse=query.descending)
    return ListPage(
        ordered[query.offset : query.offset + query.limit], min(total, SORT_WINDOW), total > SORT_WINDOW
    )


def executions_by_id(storage: Storage, namespace: Namespace, ids: Sequence[str]) -> list[ExecutionRecord]:
    """The records of this namespace among ``ids`` (others are left out), in the order asked."""
    found = (storage.get_execution(namespace.namespace_id, i) for i in dict.fromkeys(ids))
    return [r for r in found if r is not None]


def retriever_names(storage: Storage, namespace: Namespace) -> dict[str, str]:
    """retriever_id → name, newest retriever first (deleted retrievers are absent)."""
    found, _ = storage.list_retrievers(namespace.namespace_id, _NAMES_MAX, 0)
    return {r.retriever_id: r.retriever_name for r in found}


def resolve_retriever(storage: Storage, namespace: Namespace, identifier: str) -> str:
    """A retriever's id from its id or name; an unknown one is taken as the id of a deleted retriever."""
    found = storage.get_retriever(namespace.namespace_id, identifier)
    return found.retriever_id if found else identifier


def collection_names(storage: Storage, namespace: Namespace) -> dict[str, str]:
    found, _ = storage.list_collections(namespace.namespace_id, _NAMES_MAX, 0)
    return {c.collection_id: c.collection_name for c in found}


@dataclass(frozen=True)
class PlannedStages:
    stages: list[dict[str, Any]] | None  # the stage configs as written, before the optimizer
    source: str  # where they come from: "record", "retriever" (its current version), or "unknown"
    retriever_name: str | None = None
    retriever_version: int | None = None
    changed_since: bool = False  # the retriever was updated after this execution started


def planned_stages(storage: Storage, namespace: Namespace, record: ExecutionRecord) -> PlannedStages:
    """The pipeline as written before the optimizer: kept in the record (``replay.stages``, what a replay
    runs again) when it has it, else the saved retriever's stages (which may have changed since the run:
    then ``changed_since``)."""
    replay = record.detail.get("replay")
    kept = replay.get("stages") if isinstance(replay, dict) else record.detail.get("stages")
    if isinstance(kept, list) and all(isinstance(s, dict) for s in kept):
        return PlannedStages(kept, "record")
    if record.retriever_id:
        retriever = storage.get_retriever(namespace.namespace_id, record.retriever_id)
        if retriever is not None:
            return PlannedStages(
                [dict(s) for s in retriever.stages],
                "retriever",
                retriever.retriever_name,
                retriever.version,
                retriever.updated_at > record.created_at,
            )
    return PlannedStages(None, "unknown")
