"""The executions list: its query string (filters, sort, page) read and written back, and one row per
record. The same rows, as JSON, feed the page's live updates."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from siftline.api.ui.render import NONE, credits, ms, num, pct, when
from siftline.models import ExecutionRecord
from siftline.service.inspector import MODES, SORT_KEYS, STATUSES, ListQuery

PAGE_SIZES = (25, 50, 100, 200)
RANGES = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
}
RANGE_LABELS = {
    "": "any time",
    "15m": "last 15 min",
    "1h": "last hour",
    "24h": "last 24 h",
    "7d": "last 7 days",
}
COLUMNS = (  # (sort key, heading, numeric)
    ("time", "Started (UTC)", False),
    ("retriever", "Retriever", False),
    ("status", "Status", False),
    ("duration", "Duration", True),
    ("credits", "Credits", True),
    ("processed", "Processed → returned", True),
    ("cache", "Cache", True),
    ("warnings", "Warnings", True),
)


@dataclass(frozen=True)
class Filters:
    """The list's query string, as typed (echoed into the form) and as a storage query."""

    retriever: str = ""
    mode: str = ""
    status: str = ""
    range: str = ""
    since: str = ""
    until: str = ""
    sort: str = "time"
    dir: str = "desc"
    limit: int = 50
    offset: int = 0

    def params(self, **changes: Any) -> str:
        """This query string with ``changes`` (empty and default values left out)."""
        values = {**asdict(self), **changes}
        defaults = asdict(Filters())
        return urlencode({k: v for k, v in values.items() if v not in ("", None) and v != defaults[k]})

    def sort_link(self, key: str) -> str:
        """Sorting by ``key``: descending first, the other way when it is already sorted so."""
        flip = "asc" if self.sort == key and self.dir == "desc" else "desc"
        return self.params(sort=key, dir=flip, offset=0)


def _time(text: str) -> datetime | None:
    """An ISO time or a browser's datetime-local value (taken as UTC); None when empty or unreadable."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _int(text: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(high, max(low, int(text or default)))
    except ValueError:
        return default


def read_filters(params: dict[str, str]) -> Filters:
    """Unknown or malformed values fall back to the defaults: a hand-edited URL still shows a page."""
    limit = _int(params.get("limit"), 50, 1, 200)
    return Filters(
        retriever=params.get("retriever", "").strip()[:200],
        mode=params.get("mode", "") if params.get("mode") in MODES else "",
        status=params.get("status", "") if params.get("status") in STATUSES else "",
        range=params.get("range", "") if params.get("range") in RANGES else "",
        since=params.get("since", "")[:40] if _time(params.get("since", "")) else "",
        until=params.get("until", "")[:40] if _time(params.get("until", "")) else "",
        sort=params.get("sort", "time") if params.get("sort") in SORT_KEYS else "time",
        dir="asc" if params.get("dir") == "asc" else "desc",
        limit=limit,
        offset=_int(params.get("offset"), 0, 0, 10_000_000),
    )


def list_query(filters: Filters, retriever_id: str | None, now: datetime | None = None) -> ListQuery:
    since = _time(filters.since)
    if filters.range:
        since = max(filter(None, (since, (now or datetime.now(UTC)) - RANGES[filters.range])))
    return ListQuery(
        retriever_id=retriever_id,
        mode=filters.mode or None,
        statuses=(filters.status,) if filters.status else None,
        since=since,
        until=_time(filters.until),
        sort=filters.sort,
        descending=filters.dir == "desc",
        limit=filters.limit,
        offset=filters.offset,
    )


@dataclass(frozen=True)
class Row:
    execution_id: str
    href: str
    created_at: str
    started: str
    mode: str
    retriever: str
    retriever_id: str
    status: str
    live: bool
    duration: str
    credits: str
    flow: str
    cache: str
    cache_hit: bool
    warnings: int
    query: str
    error: str


def row(record: ExecutionRecord, names: dict[str, str]) -> Row:
    detail = record.detail
    live = record.status in ("pending", "processing")
    if record.mode == "adhoc":
        retriever = "ad hoc"
    else:
        retriever = names.get(record.retriever_id or "", f"{record.retriever_id} (deleted)")
    cache_hit = bool(detail.get("cache_hit"))
    rate = detail.get("cache_hit_rate")
    created = detail.get("created_at") or record.created_at.isoformat()
    return Row(
        execution_id=record.execution_id,
        href=f"/ui/executions/{record.execution_id}",
        created_at=str(created),
        started=when(created).removesuffix(" UTC"),
        mode=record.mode,
        retriever=retriever,
        retriever_id=record.retriever_id or "",
        status=record.status,
        live=live,
        duration=ms(detail.get("duration_ms")) if not live else "running…",
        credits=credits(detail.get("credits_used")) if not live else NONE,
        flow=f"{num(detail.get('total_processed') or 0)} → {num(detail.get('total_returned') or 0)}"
        if not live
        else f"stage {detail.get('stages_completed') or 0}/{detail.get('total_stages') or '?'}",
        cache="hit" if cache_hit else (pct(rate) if isinstance(rate, int | float) and rate else NONE),
        cache_hit=cache_hit,
        warnings=len(detail.get("warnings") or []),
        query=str(detail.get("query_summary") or ""),
        error=str(detail.get("error") or ""),
    )


def row_json(item: Row) -> dict[str, Any]:
    return asdict(item)
