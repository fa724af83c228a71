"""What a stage may read and use while it runs: inputs, storage, the embedder, budget, notes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from siftline.models import Collection
from siftline.pipeline.filters import Node
from siftline.storage.base import DocumentStore, SearchIndex


class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class StageStorage(DocumentStore, SearchIndex, Protocol):
    """The part of a storage backend stages use."""


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
    query_cache: dict[str, np.ndarray] = field(default_factory=dict)  # query text → embedding, per execution
    # what the execution record reports: filter conditions dropped for a missing input, caps that
    # clamped the request, and what was skipped and why
    relaxed: list[dict[str, Any]] = field(default_factory=list)
    limits: list[dict[str, Any]] = field(default_factory=list)
    degraded: list[dict[str, Any]] = field(default_factory=list)

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

    def embed_query(self, text: str) -> np.ndarray:
        return self.embedder.embed([text])[0]
