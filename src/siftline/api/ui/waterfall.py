"""An execution's stages as a waterfall (bars placed by start offset and duration, search legs as sub-rows,
severity marks) and as a funnel of document counts.

Stages run one after another, so a stage starts where the previous one ended, unless the record gives
its offset (``start_offset_ms``). A stage the optimizer merged into an earlier one (``metadata.optimized
.merged_into``) ran inside it: its bar sits within its host's. Search legs carry no timing of their own
unless the record has one (``duration_ms``): then they span their stage, drawn as "inside the stage".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from siftline.api.ui.lineage import feature_label
from siftline.api.ui.render import NONE, as_dict, ms, to_json
from siftline.api.ui.render import credits as fmt_credits

SLOW_SHARE = 0.5  # a stage taking at least this share of the total is "slow"
DROP_EFFICIENCY = 0.1  # a stage keeping less than this share of its input is a "big drop"
_VALUE_MAX = 240
_LEG_OWN = {"index", "feature_uri", "kind", "duration_ms", "start_offset_ms"}
BUDGET_PREFIX = "Budget exceeded"


@dataclass(frozen=True)
class Mark:
    kind: str  # slow | drop | cache | error | budget | merged | running
    label: str
    title: str


@dataclass(frozen=True)
class LegRow:
    index: int
    label: str
    feature_uri: str
    kind: str
    facts: list[tuple[str, str]]
    left: float
    width: float
    timed: bool
    duration_ms: float | None


@dataclass
class StageRow:
    index: int
    name: str
    stage_id: str
    offset_ms: float
    duration_ms: float
    input_count: int | None
    output_count: int | None
    efficiency: float | None
    credits: str
    error: str | None = None
    merged_into: str | None = None
    merge_rule: str | None = None
    state: str = "done"  # done | running | stopped (a budget or error stop before it ran)
    left: float = 0.0
    width: float = 0.0
    marks: list[Mark] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    legs: list[LegRow] = field(default_factory=list)


@dataclass(frozen=True)
class Waterfall:
    rows: list[StageRow]
    total_ms: float
    ticks: list[tuple[float, str]]


@dataclass(frozen=True)
class FunnelRow:
    name: str
    input_count: int
    output_count: int
    width: float
    input_width: float
    dropped: int


def value_text(value: Any) -> str:
    """A metadata value for a table cell: scalars as they are, the rest as compact JSON, cut short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, str) else to_json(value)
    return text if len(text) <= _VALUE_MAX else text[: _VALUE_MAX - 1] + "…"


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _float(value: Any, default: float = 0.0) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _row(index: int, name: str, stats: dict[str, Any], stage_ids: dict[str, str]) -> StageRow:
    metadata = as_dict(stats.get("metadata"))
    optimized = as_dict(metadata.get("optimized"))
    row = StageRow(
        index=index,
        name=name,
        stage_id=str(stats.get("stage_id") or stage_ids.get(name) or ""),
        offset_ms=0.0,
        duration_ms=_float(stats.get("duration_ms")),
        input_count=_int(stats.get("input_count")),
        output_count=_int(stats.get("output_count")),
        efficiency=_float(stats.get("efficiency"), -1.0) if "efficiency" in stats else None,
        credits=fmt_credits(metadata.get("credits")),
        error=stats.get("error") or None,
        merged_into=optimized.get("merged_into"),
        merge_rule=optimized.get("rule"),
    )
    row.facts = [(k, value_text(v)) for k, v in metadata.items() if k not in ("searches", "optimized")]
    if optimized:
        row.facts.append(("optimized", value_text(optimized)))
    if stats.get("stage_cache_hit"):
        row.facts.append(("cached_at", value_text(stats.get("cached_at"))))
    searches = metadata.get("searches")
    if isinstance(searches, list):
        row.legs = [_leg(i, s) for i, s in enumerate(searches) if isinstance(s, dict)]
    return row


def _leg(i: int, search: dict[str, Any]) -> LegRow:
    duration = _number(search.get("duration_ms"))
    timed = duration is not None
    index = _int(search.get("index"))
    return LegRow(
        index=i if index is None else index,
        label=feature_label(search.get("feature_uri")),
        feature_uri=str(search.get("feature_uri") or ""),
        kind=str(search.get("kind") or ""),
        facts=[(k, value_text(v)) for k, v in search.items() if k not in _LEG_OWN],
        left=0.0,
        width=0.0,
        timed=timed,
        duration_ms=duration,
    )


def _place(rows: list[StageRow]) -> float:
    """Start offsets: one after another, merged stages inside their host. Returns where the last ended."""
    cursor = 0.0
    by_name: dict[str, StageRow] = {}
    inner: dict[str, float] = {}
    for row in rows:
        host = by_name.get(row.merged_into or "")
        if host is not None and row.merge_rule != "eliminate_redundant_sorts":
            row.offset_ms = host.offset_ms + inner.get(host.name, 0.0)
            inner[host.name] = inner.get(host.name, 0.0) + row.duration_ms
        else:
            row.offset_ms = cursor
            cursor += row.duration_ms
        by_name[row.name] = row
    return cursor


def _width(value: float, total: float) -> float:
    return round(min(100.0, value / total * 100), 3) if total > 0 else 0.0


def _mark(row: StageRow, total: float, record_error: str | None, stopped_at: str | None) -> None:
    share = row.duration_ms / total if total > 0 else 0.0
    if row.state == "running":
        row.marks.append(Mark("running", "running", "this stage is running now"))
    if row.state == "done" and share >= SLOW_SHARE and total > 0:
        row.marks.append(Mark("slow", "slow", f"{share:.0%} of the execution's time"))
    if (
        row.input_count
        and row.efficiency is not None
        and 0 <= row.efficiency < DROP_EFFICIENCY
        and row.output_count is not None
    ):
        row.marks.append(
            Mark("drop", "big drop", f"kept {row.output_count} of {row.input_count} ({row.efficiency:.1%})")
        )
    if any(k == "cached_at" for k, _ in row.facts):
        row.marks.append(Mark("cache", "cache hit", "this stage's output came from the stage cache"))
    if row.error:
        row.marks.append(Mark("error", "error", row.error))
    if stopped_at == row.name:
        budget = bool(record_error and record_error.startswith(BUDGET_PREFIX))
        kind, label = ("budget", "budget stop") if budget else ("error", "failed here")
        row.marks.append(Mark(kind, label, record_error or "the execution stopped at this stage"))
    if row.merged_into:
        title = f"run inside '{row.merged_into}' by the optimizer ({row.merge_rule})"
        row.marks.append(Mark("merged", f"in {row.merged_into}", title))


def waterfall(
    detail: dict[str, Any], stage_ids: dict[str, str], running_ms: float | None = None
) -> Waterfall:
    """The rows of a record's stages; ``running_ms`` (time since the start) while it is still running."""
    stats = (detail.get("stage_statistics") or {}).get("stages") or {}
    rows = [_row(i, name, as_dict(s), stage_ids) for i, (name, s) in enumerate(stats.items())]
    for row in rows:  # a recorded offset wins over the computed one
        recorded = (stats.get(row.name) or {}).get("start_offset_ms")
        if isinstance(recorded, int | float):
            row.offset_ms = float(recorded)
    end = _place(
        [r for r in rows if not isinstance((stats.get(r.name) or {}).get("start_offset_ms"), int | float)]
    )
    end = max([end, *(r.offset_ms + r.duration_ms for r in rows)])
    failed = as_dict(detail.get("failed_stage"))
    stopped_at = failed.get("stage_name") if detail.get("status") == "failed" else None
    current = detail.get("current_stage") if detail.get("status") in ("pending", "processing") else None
    for name, state in ((stopped_at, "stopped"), (current, "running")):
        if name and name not in stats:
            extra = StageRow(
                len(rows), name, stage_ids.get(name, ""), end, 0.0, None, None, None, NONE, state=state
            )
            if state == "running" and running_ms is not None:
                extra.duration_ms = max(0.0, running_ms - end)
            rows.append(extra)
            end += extra.duration_ms
    recorded_total = _float((detail.get("stage_statistics") or {}).get("total_time_ms"))
    total = max(end, recorded_total, running_ms or 0.0)
    for row in rows:
        row.left = _width(row.offset_ms, total)
        row.width = max(_width(row.duration_ms, total), 0.4 if row.duration_ms > 0 else 0.0)
        for i, leg in enumerate(row.legs):
            if leg.timed and leg.duration_ms is not None:
                row.legs[i] = _replace_leg(leg, row.left, max(_width(leg.duration_ms, total), 0.4))
            else:
                row.legs[i] = _replace_leg(leg, row.left, row.width)
        _mark(row, total, detail.get("error"), stopped_at)
    ticks = [(q * 100, ms(total * q)) for q in (0, 0.25, 0.5, 0.75, 1)] if total > 0 else []
    return Waterfall(rows, total, ticks)


def _replace_leg(leg: LegRow, left: float, width: float) -> LegRow:
    return LegRow(
        leg.index, leg.label, leg.feature_uri, leg.kind, leg.facts, left, width, leg.timed, leg.duration_ms
    )


def funnel(rows: list[StageRow]) -> list[FunnelRow]:
    """Documents in and out of each stage that ran, bars scaled to the largest count."""
    ran = [r for r in rows if r.state == "done" and r.output_count is not None]
    scale = max([1, *(r.output_count or 0 for r in ran), *(r.input_count or 0 for r in ran)])
    return [
        FunnelRow(
            name=r.name,
            input_count=r.input_count or 0,
            output_count=r.output_count or 0,
            width=_width(r.output_count or 0, scale),
            input_width=_width(r.input_count or 0, scale),
            dropped=max(0, (r.input_count or 0) - (r.output_count or 0)),
        )
        for r in ran
    ]
