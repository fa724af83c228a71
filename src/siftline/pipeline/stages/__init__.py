"""The stage registry: every built stage, by its ``stage_id``. Adding a stage = one module + one line here."""

from __future__ import annotations

from typing import Any

from siftline.pipeline.stages.attribute_filter import AttributeFilter
from siftline.pipeline.stages.base import Stage
from siftline.pipeline.stages.feature_search import FeatureSearch
from siftline.pipeline.stages.group_by import GroupBy
from siftline.pipeline.stages.limit import Limit
from siftline.pipeline.stages.rerank import Rerank
from siftline.pipeline.stages.sort_attribute import SortAttribute
from siftline.pipeline.stages.sort_relevance import SortRelevance

STAGES: dict[str, type[Stage[Any]]] = {
    "feature_search": FeatureSearch,
    "attribute_filter": AttributeFilter,
    "sort_relevance": SortRelevance,
    "sort_attribute": SortAttribute,
    "rerank": Rerank,
    "limit": Limit,
    "group_by": GroupBy,
}

__all__ = ["STAGES", "Stage"]
