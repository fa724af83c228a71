"""What a stage may read and use while it runs: inputs, storage, the embedder, budget, notes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from siftline.filters import Node
from siftline.models import Collection
from siftline.pipeline.parallel import Once
from siftline.storage.base import DocumentStore, FusionStore, SearchIndex


class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class StageStorage(DocumentStore, SearchIndex, FusionStore, Protocol):
    """The part of a storage backend stages use."""


class QueryEmbeddings(Protocol):
    """Query embeddings through a cache: ``(vector, served from the cache)``."""

    def embed(self, text: str, use_cache: bool) -> tuple[np.ndarray, bool]: ...


@dataclass
class CachedStage:
    """A stage output served from the stage cache."""

    candidates: list[Any]  # list[Candidate]
    metadata: dict[str, Any]
    warnings: list[str]
    limits: list[dict[str, Any]]
    cached_at: float


class StageCache(Protocol):
    """Caches of whole stage outputs (``cache_behavior: aggressive`` and ``cache_config.cache_stage_names``)."""

    def wanted(self, stage_name: str, cache_behavior: str) -> bool: ...
    def lookup(self, key: str) -> CachedStage | None: ...
    def store(self, key: str, stage_name: str, ttl_seconds: int | None, value: CachedStage) -> None: ...
    def key(
        self, ctx: ExecutionContext, stage: Any, rendered: dict[str, Any], candidates: list[Any]
    ) -> str: ...


@dataclass
class AbsorbedRun:
    """What a stage absorbed by the optimizer did, run inside the stage that absorbed it."""

    name: str
    stage_id: str
    rule: str
    merged_into: str
    input_count: int
    output_count: int
    duration_ms: float
    metadata: dict[str, Any]
    stage_index: int = -1


@dataclass
class Budget:
    max_credits: float | None = None
    max_time_ms: int | None = None
    credits_used: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    @property
    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    @property
    def credits_remaining(self) -> float | None:
        return None if self.max_credits is None else max(self.max_credits - self.credits_used, 0.0)

    def snapshot(self) -> dict[str, Any]:
        return {
            "credits_used": round(self.credits_used, 6),
            "credits_remaining": None if self.credits_remaining is None else round(self.credits_remaining, 6),
            "time_used_ms": round(self.elapsed_ms, 3),
            "max_credits": self.max_credits,
            "max_time_ms": self.max_time_ms,
        }


@dataclass
class ExecutionContext:
    storage: StageStorage
    embedder: Embedder
    collections: list[Collection]
    inputs: dict[str, Any] = field(default_factory=dict)
    filters: Node | None = None  # request-level filters, ANDed into every search
    return_vectors: bool = False
    budget: Budget = field(default_factory=Budget)
    stage_outputs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)  # the running stage's statistics metadata
    search_filter: Node | None = None  # the running search stage's filter: request filters AND pre_filters
    # query text → (embedding, served from the embedding cache), per execution; legs running at once
    # embed a text once
    query_cache: Once = field(default_factory=Once)
    # what the execution record reports: filter conditions dropped for a missing input, caps that
    # clamped the request, and what was skipped and why
    relaxed: list[dict[str, Any]] = field(default_factory=list)
    limits: list[dict[str, Any]] = field(default_factory=list)
    degraded: list[dict[str, Any]] = field(default_factory=list)
    # caches: skip_cache (no lookups; fresh results are still stored), the running stage's
    # cache_behavior, query embeddings, and whole stage outputs
    skip_cache: bool = False
    cache_behavior: str = "auto"
    embeddings: QueryEmbeddings | None = None
    stage_cache: StageCache | None = None
    # the optimizer: the running stage's absorbed stages (rule, planned stage, stage instance), its
    # post_filters when storage evaluates them, what the absorbed stages did, and the requested page
    # ([start, end) of the final list) when only it needs hydrating
    absorbed: list[tuple[str, Any, Any]] = field(default_factory=list)
    pushed_post_filter: Node | None = None
    absorbed_runs: list[AbsorbedRun] = field(default_factory=list)
    page_window: tuple[int, int] | None = None
    stage_cache_hit: bool = False  # the running stage was served from a cache (e.g. every query embedding)
    # learned fusion: whose posteriors (the retriever id; ad hoc: a hash of its stages), the seed of this
    # execution's draws, and what each learned stage drew (public context and what credit assignment needs)
    # explain: true: candidates carry their score lineage (pipeline/lineage.py)
    explain: bool = False
    fusion_scope: str = ""
    fusion_seed: int = 0
    # a replay: each learned stage's recorded draw (by stage name), used instead of drawing again
    pinned_draws: dict[str, dict[str, Any]] = field(default_factory=dict)
    learned: list[dict[str, Any]] = field(default_factory=list)

    def collection(self, identifier: str) -> Collection | None:
        for col in self.collections:
            if identifier in (col.collection_id, col.collection_name):
                return col
        return None

    def template_context(self) -> dict[str, Any]:
        """Names a template may use: INPUT/inputs, CONTEXT, STAGE."""
        context = {
            "budget_remaining": self.budget.credits_remaining,
            "time_elapsed_ms": round(self.budget.elapsed_ms, 3),
        }
        return {
            "INPUT": self.inputs,
            "inputs": self.inputs,
            "CONTEXT": context,
            "context": context,
            "STAGE": self.stage_outputs,
            "stage": self.stage_outputs,
        }

    def embed_query(self, text: str) -> tuple[np.ndarray, bool]:
        """The query's embedding and whether a cache served it (``cache_behavior: disabled`` and
        ``skip_cache`` look nothing up)."""
        use_cache = self.cache_behavior != "disabled" and not self.skip_cache
        if self.embeddings is not None:
            return self.embeddings.embed(text, use_cache)
        return self.embedder.embed([text])[0], False
