"""Two rankings side by side, joined by lines: the geometry of the compare page's results. Each column lists
its run's documents in rank order, one row of ROW_PX each (the CSS reads it as ``--cmp-row``); between
them a drawing GUTTER_PX wide joins a document's row in a to its row in b with a curve (grey when its rank
is the same, coloured and labelled ±n when it moved) or, for a document in one run only, a short mark on
that run's side. The template draws what is computed here.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, replace
from typing import Any

from siftline.api.ui.render import score, signed

ROW_PX = 24  # height of a ranked row: the columns (CSS --cmp-row) and the lines between them share it
GUTTER_PX = 220  # width of the lines' drawing between the columns
STUB_PX = 26  # length of the mark of a document in one run only
LABEL_GAP_PX = 14  # move labels sit mid-way on their lines; one closer than this to another is left out


@dataclass(frozen=True)
class RankRow:
    doc: int  # the document's index: its row in the other column and its line carry the same
    rank: int
    document_id: str
    collection: str
    score: Any
    status: str  # same | moved | new | dropped
    move: int | None
    other_rank: int | None
    score_delta: str  # +0.0123 or minus 0.5 (signed); empty when unchanged or unknown
    y: float


@dataclass(frozen=True)
class Line:
    doc: int
    status: str
    direction: str  # up | down | same
    move: int
    path: str
    label: str  # +6, or minus 1 (signed); empty for unchanged
    label_x: float
    label_y: float
    title: str


@dataclass(frozen=True)
class Stub:
    """A document in one run only: a short mark at its side of the drawing."""

    doc: int
    status: str  # new | dropped
    x1: float
    x2: float
    y: float
    title: str


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _move_label(move: int | None) -> str:
    return signed(move) if move else ""


def _score_delta(value: Any) -> str:
    number = _number(value)
    return signed(number, score) if number else ""


def columns(
    documents: list[dict[str, Any]], keep: tuple[str, ...], collections: dict[str, str]
) -> tuple[list[RankRow], list[RankRow]]:
    """The rows of each column among the kept statuses, in rank order, at their compacted positions."""
    rows: dict[str, list[RankRow]] = {"a": [], "b": []}
    for side, other in (("a", "b"), ("b", "a")):
        ranked = sorted(
            (
                (d[f"rank_{side}"], i, d)
                for i, d in enumerate(documents)
                if d.get("status") in keep and isinstance(d.get(f"rank_{side}"), int)
            ),
            key=lambda t: t[0],
        )
        for position, (rank, i, d) in enumerate(ranked):
            col = str(d.get("collection_id") or "")
            rows[side].append(
                RankRow(
                    doc=i,
                    rank=rank,
                    document_id=str(d.get("document_id") or ""),
                    collection=collections.get(col, col),
                    score=d.get(f"score_{side}"),
                    status=str(d.get("status")),
                    move=d.get("move"),
                    other_rank=d.get(f"rank_{other}"),
                    score_delta=_score_delta(d.get("score_delta")),
                    y=(position + 0.5) * ROW_PX,
                )
            )
    return rows["a"], rows["b"]


def joining_lines(rows_a: list[RankRow], rows_b: list[RankRow]) -> tuple[list[Line], list[Stub]]:
    """A curve from each document's row in a to its row in b; a stub for a document in one run only."""
    at_b = {r.doc: r for r in rows_b}
    w, mid = GUTTER_PX, GUTTER_PX / 2
    lines, stubs = [], []
    for ra in rows_a:
        rb = at_b.get(ra.doc)
        if rb is None:
            stubs.append(
                Stub(ra.doc, "dropped", 0, STUB_PX, ra.y, f"{ra.document_id}: #{ra.rank} in a, not in b")
            )
            continue
        move = ra.move or 0
        direction = "up" if move > 0 else "down" if move < 0 else "same"
        ya, yb = ra.y, rb.y
        lines.append(
            Line(
                doc=ra.doc,
                status=ra.status,
                direction=direction,
                move=move,
                path=f"M0 {ya:g}C{mid:g} {ya:g} {mid:g} {yb:g} {w} {yb:g}",
                label=_move_label(move),
                label_x=mid,
                label_y=round((ya + yb) / 2 + 4, 1),
                title=f"{ra.document_id}: #{ra.rank} → #{rb.rank}"
                + (f" ({'up' if move > 0 else 'down'} {abs(move)})" if move else " (unchanged)"),
            )
        )
    in_a = {r.doc for r in rows_a}
    for rb in rows_b:
        if rb.doc not in in_a and rb.status == "new":
            stubs.append(
                Stub(rb.doc, "new", w - STUB_PX, w, rb.y, f"{rb.document_id}: not in a, #{rb.rank} in b")
            )
    return _spaced_labels(lines), stubs


def _spaced_labels(lines: list[Line]) -> list[Line]:
    """Labels that do not overlap: the largest moves first; a label too close to a kept one is dropped
    (the line's tooltip and the row in b still say how far it moved)."""
    kept: list[float] = []
    labelled: set[int] = set()
    for i in sorted((i for i, ln in enumerate(lines) if ln.label), key=lambda i: -abs(lines[i].move)):
        y = lines[i].label_y
        at = bisect_left(kept, y)
        if all(abs(kept[j] - y) >= LABEL_GAP_PX for j in (at - 1, at) if 0 <= j < len(kept)):
            kept.insert(at, y)
            labelled.add(i)
    return [ln if i in labelled or not ln.label else replace(ln, label="") for i, ln in enumerate(lines)]
