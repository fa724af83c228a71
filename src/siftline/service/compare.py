"""Comparing two execution records: how their results and stages differ.

Documents are matched by ``(collection_id, document_id)``; a document returned twice in one run counts
at its first (best) rank. With ``A`` and ``B`` the two ranked lists and ``A_k`` their first ``k``:

* ``overlap_at_k``: ``|A_k ∩ B_k| / max(|A_k|, |B_k|)`` (1.0 when both are empty): the share of the
  top ``k`` they agree on, ignoring order;
* ``jaccard``: ``|A and B| / |A or B|`` (as sets) over everything each returned;
* ``rbo``: rank-biased overlap (Webber, Moffat and Zobel 2010), the extrapolated form ``RBO_ext`` for
  lists of unequal length, persistence ``p`` (0.9: the top 10 carry about 86 % of the weight); 1.0
  for identical lists, 0.0 for disjoint ones;
* per document: its rank in each (1-based, None where absent), ``move = rank_a - rank_b`` (positive:
  it rose in b), both scores and ``score_delta = score_b - score_a``, and ``status``: ``same``
  (same rank), ``moved``, ``new`` (only in b) or ``dropped`` (only in a);
* per stage, aligned by name (a's order, then b's own): each side's time and counts and the deltas.
"""

from __future__ import annotations

from typing import Any

from siftline.errors import ConflictError, ValidationError
from siftline.models import ExecutionRecord, Namespace
from siftline.service import executions
from siftline.storage.base import Storage

Key = tuple[str, str]
RBO_P = 0.9
K_MAX = 10_000  # the deepest overlap@k


def ranked(record: ExecutionRecord) -> list[tuple[Key, float | None]]:
    if record.documents is None:
        raise ConflictError(
            f"The documents of execution '{record.execution_id}' are not kept (the record retention "
            "setting dropped them, or the run has not finished), so it cannot be compared; replay it."
        )
    seen: set[Key] = set()
    out: list[tuple[Key, float | None]] = []
    for doc in record.documents:
        key = (str(doc.get("collection_id", "")), str(doc.get("document_id", "")))
        if key not in seen:
            seen.add(key)
            score = doc.get("score")
            out.append((key, float(score) if isinstance(score, int | float) else None))
    return out


def rbo(a: list[Key], b: list[Key], p: float = RBO_P) -> float:
    """Extrapolated rank-biased overlap of two rankings without duplicates (Webber et al., eq. 32)."""
    if not a and not b:
        return 1.0
    if not a or not b:
        return 0.0
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    s, l = len(short), len(long_)  # noqa: E741
    seen_s: set[Key] = set()
    seen_l: set[Key] = set()
    overlap = 0
    overlaps = [0] * (l + 1)  # X_d
    for d in range(1, l + 1):
        x = long_[d - 1]
        if d <= s:
            y = short[d - 1]
            if x == y:
                overlap += 1
            else:
                overlap += (x in seen_s) + (y in seen_l)
            seen_s.add(y)
        elif x in seen_s:
            overlap += 1
        seen_l.add(x)
        overlaps[d] = overlap
    x_s, x_l = overlaps[s], overlaps[l]
    total = sum(overlaps[d] / d * p**d for d in range(1, l + 1))
    total += sum(x_s * (d - s) / (s * d) * p**d for d in range(s + 1, l + 1))
    return (1 - p) / p * total + ((x_l - x_s) / l + x_s / s) * p**l


def _delta(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str) -> float | int | None:
    if a is None or b is None:
        return None
    value = b[key] - a[key]
    return round(value, 3) if isinstance(value, float) else value


def _stages(a: ExecutionRecord, b: ExecutionRecord) -> list[dict[str, Any]]:
    sa = {r.pop("stage_name"): r for r in executions.stage_rows(a.detail.get("stage_statistics") or {})}
    sb = {r.pop("stage_name"): r for r in executions.stage_rows(b.detail.get("stage_statistics") or {})}
    rows = []
    for name in [*sa, *(n for n in sb if n not in sa)]:
        left, right = sa.get(name), sb.get(name)
        rows.append(
            {
                "stage_name": name,
                "a": left,
                "b": right,
                "duration_delta_ms": _delta(left, right, "duration_ms"),
                "input_delta": _delta(left, right, "input_count"),
                "output_delta": _delta(left, right, "output_count"),
            }
        )
    return rows


def _side(record: ExecutionRecord) -> dict[str, Any]:
    summary = executions.summary(record)
    return {
        **summary,
        "retriever_id": record.retriever_id or "",
        "execution_mode": record.mode,
        "replay_of": record.detail.get("replay_of"),
        "error": record.detail.get("error"),
    }


def compare(storage: Storage, namespace: Namespace, a_id: str, b_id: str, k: int = 10) -> dict[str, Any]:
    if not 1 <= k <= K_MAX:
        raise ValidationError.at(["query", "k"], f"k is 1-{K_MAX}")
    a, b = executions.find_any(storage, namespace, a_id), executions.find_any(storage, namespace, b_id)
    list_a, list_b = ranked(a), ranked(b)
    keys_a, keys_b = [key for key, _ in list_a], [key for key, _ in list_b]
    top_a, top_b = set(keys_a[:k]), set(keys_b[:k])
    set_a, set_b = set(keys_a), set(keys_b)
    rank_a = {key: (i, score) for i, (key, score) in enumerate(list_a, start=1)}
    rank_b = {key: (i, score) for i, (key, score) in enumerate(list_b, start=1)}
    documents = []
    for key in [*keys_a, *(x for x in keys_b if x not in rank_a)]:
        ra, sa = rank_a.get(key, (None, None))
        rb, sb = rank_b.get(key, (None, None))
        if ra is None:
            status, move = "new", None
        elif rb is None:
            status, move = "dropped", None
        else:
            move = ra - rb
            status = "same" if move == 0 else "moved"
        documents.append(
            {
                "collection_id": key[0],
                "document_id": key[1],
                "rank_a": ra,
                "rank_b": rb,
                "move": move,
                "score_a": sa,
                "score_b": sb,
                "score_delta": None if sa is None or sb is None else sb - sa,
                "status": status,
            }
        )

    def ids(status: str) -> list[str]:
        return [str(d["document_id"]) for d in documents if d["status"] == status]

    union = set_a | set_b
    wider = max(len(top_a), len(top_b))
    side_a, side_b = _side(a), _side(b)
    return {
        "a": side_a,
        "b": side_b,
        "k": k,
        "overlap_at_k": len(top_a & top_b) / wider if wider else 1.0,
        "jaccard": len(set_a & set_b) / len(union) if union else 1.0,
        "rbo": rbo(keys_a, keys_b),
        "rbo_p": RBO_P,
        "identical": keys_a == keys_b,
        "moved": ids("moved"),
        "new": ids("new"),
        "dropped": ids("dropped"),
        "unchanged": ids("same"),
        "documents": documents,
        "stages": _stages(a, b),
        "totals": {
            "duration_delta_ms": round(side_b["duration_ms"] - side_a["duration_ms"], 3),
            "credits_delta": round(side_b["credits_used"] - side_a["credits_used"], 6),
            "returned_delta": side_b["total_returned"] - side_a["total_returned"],
        },
    }
