"""The one credits table: what each stage kind costs.

A stage costs ``base`` credits per run (for ``feature_search``: per search it performs) plus
``per_document`` for each document it processes (documents it receives; for ``feature_search``,
documents it returns). A retriever-level cache hit costs nothing. Budgets (``max_credits``) are
checked before each stage against the stage's estimated cost, so a run stops at the stage that would
exceed them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cost:
    base: float
    per_document: float


DEFAULT = Cost(base=0.1, per_document=0.0001)

TABLE: dict[str, Cost] = {
    "feature_search": Cost(base=1.0, per_document=0.001),  # base is per search
    "attribute_filter": Cost(base=0.1, per_document=0.0001),
    "sort_relevance": Cost(base=0.05, per_document=0.0001),
    "sort_attribute": Cost(base=0.05, per_document=0.0001),
    "limit": Cost(base=0.01, per_document=0.0),
    "group_by": Cost(base=0.1, per_document=0.0001),
    "rerank": Cost(base=0.5, per_document=0.01),
    "mmr": Cost(base=0.1, per_document=0.001),
    "score_normalize": Cost(base=0.05, per_document=0.0001),
    "deduplicate": Cost(base=0.1, per_document=0.0005),
    "sample": Cost(base=0.05, per_document=0.0001),
    "aggregate": Cost(base=0.1, per_document=0.0002),
    "unwind": Cost(base=0.05, per_document=0.0001),
    "document_enrich": Cost(base=0.2, per_document=0.001),
    "json_transform": Cost(base=0.05, per_document=0.0005),
    "rag_prepare": Cost(base=0.1, per_document=0.0005),
}


def cost_of(stage_id: str) -> Cost:
    return TABLE.get(stage_id, DEFAULT)


def stage_credits(stage_id: str, units: int, documents: int) -> float:
    """Credits for one run of a stage: ``units`` x base (searches, or 1) + documents x per-document."""
    cost = cost_of(stage_id)
    return round(cost.base * max(units, 1) + cost.per_document * documents, 6)


def credits_table() -> list[dict[str, float | str]]:
    """The table as documented data (served with the stage list)."""
    return [{"stage_id": k, "base": v.base, "per_document": v.per_document} for k, v in sorted(TABLE.items())]
