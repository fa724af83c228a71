"""The stage registry: every built stage, by its ``stage_id``. Adding a stage = one module + one line here."""

from __future__ import annotations

from typing import Any

from siftline.pipeline.stages.aggregate import Aggregate
from siftline.pipeline.stages.attribute_filter import AttributeFilter
from siftline.pipeline.stages.base import Stage
from siftline.pipeline.stages.deduplicate import Deduplicate
from siftline.pipeline.stages.document_enrich import DocumentEnrich
from siftline.pipeline.stages.feature_search import FeatureSearch
from siftline.pipeline.stages.group_by import GroupBy
from siftline.pipeline.stages.json_transform import JsonTransform
from siftline.pipeline.stages.limit import Limit
from siftline.pipeline.stages.mmr import Mmr
from siftline.pipeline.stages.rag_prepare import RagPrepare
from siftline.pipeline.stages.rerank import Rerank
from siftline.pipeline.stages.sample import Sample
from siftline.pipeline.stages.score_normalize import ScoreNormalize
from siftline.pipeline.stages.sort_attribute import SortAttribute
from siftline.pipeline.stages.sort_relevance import SortRelevance
from siftline.pipeline.stages.unwind import Unwind

STAGES: dict[str, type[Stage[Any]]] = {
    "feature_search": FeatureSearch,
    "attribute_filter": AttributeFilter,
    "sort_relevance": SortRelevance,
    "sort_attribute": SortAttribute,
    "rerank": Rerank,
    "limit": Limit,
    "group_by": GroupBy,
    "mmr": Mmr,
    "score_normalize": ScoreNormalize,
    "deduplicate": Deduplicate,
    "sample": Sample,
    "aggregate": Aggregate,
    "unwind": Unwind,
    "document_enrich": DocumentEnrich,
    "json_transform": JsonTransform,
    "rag_prepare": RagPrepare,
}

__all__ = ["STAGES", "Stage"]
