"""What the compare page shows, built from ``service.compare.compare``: both runs side by side, the
figures (overlap@k, Jaccard, RBO, counts), the stages aligned by name with their deltas, and the results
as two ranked columns joined by lines (``ranks``: their geometry; the template only draws it).

Pure functions over the comparison: no storage here. A filter (``show``) keeps only the documents of some
statuses; the columns and lines are then laid out over what is left, so a filtered view stays compact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from siftline.api.ui.ranks import GUTTER_PX, ROW_PX, Line, RankRow, Stub, columns, joining_lines
from siftline.api.ui.render import NONE, as_dict, as_list, credits, ms, num, signed
from siftline.api.ui.views import Fact
from siftline.service import compare

K_CHOICES = (1, 3, 5, 10, 20, 50, 100)
K_MAX = compare.K_MAX
SHOWS = {  # filter → (label, statuses kept)
    "all": ("All", ("same", "moved", "new", "dropped")),
    "changed": ("Changed", ("moved", "new", "dropped")),
    "moved": ("Moved", ("moved",)),
    "new": ("New", ("new",)),
    "dropped": ("Dropped", ("dropped",)),
    "same": ("Unchanged", ("same",)),
}
TIME_NOISE_MS = 0.05  # a time delta below this, or below TIME_NOISE_SHARE of the slower side, is not coloured
TIME_NOISE_SHARE = 0.1


@dataclass(frozen=True)
class Delta:
    text: str
    tone: str  # "" | slower | faster | fewer | more
    word: str = ""  # "slower", "3 fewer", … for the title and screen readers


@dataclass(frozen=True)
class Side:
    label: str  # a | b
    execution_id: str
    status: str
    mode: str
    retriever: str
    retriever_id: str
    created_at: str | None
    query: str
    duration_ms: float
    credits_used: float
    total_returned: int
    replay_of: str | None
    error: str | None


@dataclass(frozen=True)
class StageSide:
    duration_ms: Any
    input_count: Any
    output_count: Any
    credits: str
    cache_hit: bool
    error: str | None


@dataclass(frozen=True)
class StageDiff:
    name: str
    a: StageSide | None
    b: StageSide | None
    time: Delta | None
    inputs: Delta | None
    outputs: Delta | None


@dataclass(frozen=True)
class Filter:
    key: str
    label: str
    count: int
    href: str
    current: bool


@dataclass
class CompareView:
    a: Side
    b: Side
    k: int
    k_choices: list[Filter]  # links to the same page at another k (the current filter kept)
    show: str
    filters: list[Filter]
    facts: list[Fact]
    identical: bool
    counts: dict[str, int]
    totals: dict[str, Delta]
    stages: list[StageDiff]
    rows_a: list[RankRow]
    rows_b: list[RankRow]
    lines: list[Line]
    stubs: list[Stub]
    height: int
    width: int
    row_px: int
    cut_y: float | None  # the top-k boundary, drawn in the unfiltered view


def read_k(text: str | None) -> int:
    """The k of overlap@k from the query string: 10 when missing or unreadable, within 1…K_MAX."""
    try:
        return min(K_MAX, max(1, int(text or 10)))
    except ValueError:
        return 10


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def time_delta(a: Any, b: Any) -> Delta | None:
    """b's time against a's: coloured slower or faster when the change is more than noise."""
    ta, tb = _number(a), _number(b)
    if ta is None or tb is None:
        return None
    delta = tb - ta
    if abs(delta) < max(TIME_NOISE_MS, TIME_NOISE_SHARE * max(ta, tb)):
        return Delta(signed(delta, ms), "", "about the same time")
    tone = "slower" if delta > 0 else "faster"
    return Delta(signed(delta, ms), tone, f"{ms(abs(delta))} {tone}")


def count_delta(a: Any, b: Any) -> Delta | None:
    ca, cb = _number(a), _number(b)
    if ca is None or cb is None:
        return None
    delta = int(cb - ca)
    if delta == 0:
        return Delta(signed(0), "", "the same count")
    tone = "more" if delta > 0 else "fewer"
    return Delta(signed(delta), tone, f"{num(abs(delta))} {tone}")


def _side(label: str, raw: dict[str, Any], names: dict[str, str]) -> Side:
    mode = str(raw.get("execution_mode") or "saved")
    rid = str(raw.get("retriever_id") or "")
    retriever = "ad hoc" if mode == "adhoc" else names.get(rid, f"{rid} (deleted)" if rid else NONE)
    return Side(
        label=label,
        execution_id=str(raw.get("execution_id") or ""),
        status=str(raw.get("status") or ""),
        mode=mode,
        retriever=retriever,
        retriever_id=rid,
        created_at=raw.get("created_at"),
        query=str(raw.get("query_summary") or ""),
        duration_ms=_number(raw.get("duration_ms")) or 0.0,
        credits_used=_number(raw.get("credits_used")) or 0.0,
        total_returned=int(_number(raw.get("total_returned")) or 0),
        replay_of=raw.get("replay_of") or None,
        error=raw.get("error") or None,
    )


def _stage_side(raw: Any) -> StageSide | None:
    if not isinstance(raw, dict):
        return None
    return StageSide(
        duration_ms=raw.get("duration_ms"),
        input_count=raw.get("input_count"),
        output_count=raw.get("output_count"),
        credits=credits(raw.get("credits")),
        cache_hit=bool(raw.get("stage_cache_hit")),
        error=raw.get("error") or None,
    )


def stage_diffs(stages: list[Any]) -> list[StageDiff]:
    out = []
    for raw in (as_dict(s) for s in stages):
        a, b = _stage_side(raw.get("a")), _stage_side(raw.get("b"))
        name = str(raw.get("stage_name") or "")
        if a is None or b is None:  # this stage ran in one of the two only
            out.append(StageDiff(name, a, b, None, None, None))
            continue
        out.append(
            StageDiff(
                name,
                a,
                b,
                time_delta(a.duration_ms, b.duration_ms),
                count_delta(a.input_count, b.input_count),
                count_delta(a.output_count, b.output_count),
            )
        )
    return out


def _href(a: str, b: str, k: int, show: str) -> str:
    params: dict[str, Any] = {"a": a, "b": b}
    if k != 10:
        params["k"] = k
    if show != "all":
        params["show"] = show
    return "/ui/compare?" + urlencode(params)


def _facts(result: dict[str, Any], counts: dict[str, int], href: Any) -> list[Fact]:
    k = int(result.get("k") or 10)
    docs = [as_dict(d) for d in as_list(result.get("documents"))]
    beyond = K_MAX + 1
    shared_k = sum(1 for d in docs if max(d.get("rank_a") or beyond, d.get("rank_b") or beyond) <= k)
    in_both = sum(1 for d in docs if d.get("rank_a") is not None and d.get("rank_b") is not None)
    overlap, jaccard, rbo = (_number(result.get(x)) or 0.0 for x in ("overlap_at_k", "jaccard", "rbo"))
    tone = "good" if result.get("identical") else ""
    facts = [
        Fact(f"Overlap@{k}", f"{overlap:.2f}", f"{shared_k} shared in the top {k}", tone),
        Fact("Jaccard", f"{jaccard:.2f}", f"{in_both} of {len(docs)} in both", tone),
        Fact("RBO", f"{rbo:.3f}", f"rank-biased, p = {result.get('rbo_p', 0.9)}", tone),
    ]
    for key, label, kind in (("moved", "Moved", "warn"), ("new", "New", ""), ("dropped", "Dropped", "bad")):
        n = counts[key]
        facts.append(Fact(label, num(n), "", kind if n else "", href(key) if n else None))
    same = counts["same"]
    facts.append(Fact("Unchanged", num(same), "same rank", "", href("same") if same else None))
    return facts


def compare_view(
    result: dict[str, Any],
    *,
    show: str = "all",
    retriever_names: dict[str, str] | None = None,
    collections: dict[str, str] | None = None,
) -> CompareView:
    """Everything the compare page shows, from ``service.compare.compare``'s answer."""
    names = retriever_names or {}
    a, b = _side("a", as_dict(result.get("a")), names), _side("b", as_dict(result.get("b")), names)
    k = int(result.get("k") or 10)
    show = show if show in SHOWS else "all"
    documents = [as_dict(d) for d in as_list(result.get("documents"))]
    statuses = [d.get("status") for d in documents]
    counts = {s: statuses.count(s) for s in ("same", "moved", "new", "dropped")}

    def href(key: str) -> str:
        return _href(a.execution_id, b.execution_id, k, key)

    filters = [
        Filter(key, label, sum(counts[s] for s in kept), href(key), key == show)
        for key, (label, kept) in SHOWS.items()
    ]
    rows_a, rows_b = columns(documents, SHOWS[show][1], collections or {})
    lines, stubs = joining_lines(rows_a, rows_b)
    longest = max(len(rows_a), len(rows_b))
    return CompareView(
        a=a,
        b=b,
        k=k,
        k_choices=[
            Filter(str(n), str(n), n, _href(a.execution_id, b.execution_id, n, show), n == k)
            for n in sorted({*K_CHOICES, k})
        ],
        show=show,
        filters=filters,
        facts=_facts(result, counts, href),
        identical=bool(result.get("identical")),
        counts=counts,
        totals={
            "duration": time_delta(a.duration_ms, b.duration_ms) or Delta("", ""),
            "credits": Delta(signed(b.credits_used - a.credits_used, credits), ""),
            "returned": count_delta(a.total_returned, b.total_returned) or Delta("", ""),
        },
        stages=stage_diffs(as_list(result.get("stages"))),
        rows_a=rows_a,
        rows_b=rows_b,
        lines=lines,
        stubs=stubs,
        height=max(1, longest) * ROW_PX,
        width=GUTTER_PX,
        row_px=ROW_PX,
        cut_y=k * ROW_PX if show == "all" and k < longest else None,
    )
