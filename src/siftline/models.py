"""Domain records shared by service, pipeline and storage (no HTTP, no SQL).

The wire shapes live in ``api/schemas``; these are what the service layer works with and what a
storage backend persists.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal

import numpy as np

Metric = Literal["cosine", "dot_product", "euclidean"]
FeatureKind = Literal["dense", "bm25"]
PayloadIndexType = Literal["keyword", "integer", "float", "bool", "datetime", "text"]

INTERACTION_TYPES = (
    "impression",
    "view",
    "click",
    "dwell",
    "positive_feedback",
    "negative_feedback",
    "purchase",
    "add_to_cart",
    "wishlist",
    "long_view",
    "share",
    "bookmark",
    "query_refinement",
    "zero_results",
    "filter_toggle",
    "skip",
    "return_to_results",
    "play",
    "download",
    "save",
    "add_to_project",
    "rating",
)  # fmt: skip  (the SDK's InteractionType)
TEXT_EXTRACTOR = "text_extractor"
TEXT_EXTRACTOR_VERSION = "v1"
TEXT_DENSE_OUTPUT = "all_minilm_l6_v2"  # the dense output of text_extractor@v1
TEXT_BM25_OUTPUT = "bm25"
USER_VECTOR_EXTRACTOR = "vectors"
# The largest vector component accepted, in a document or a query: squares of 4096 such components still add
# up within float32 range, so norms, dot products and distances never overflow to ±Infinity (as components
# near 3.4e38 did).
VECTOR_COMPONENT_MAX = 1e15


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    return (
        ts.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    )  # fixed width: sorts as text


@dataclass(frozen=True)
class Namespace:
    namespace_id: str
    namespace_name: str
    description: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hr|hour)s?", re.IGNORECASE)
_PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600}
UNLIMITED_WORDS = ("unlimited", "none", "off")


@dataclass(frozen=True)
class Rate:
    """A rate limit as a token bucket: ``per_second`` requests' worth refilled each second, at most ``burst``
    kept. ``Rate(0, 0)`` (:data:`UNLIMITED`) exempts a key from the server's default limit."""

    per_second: float
    burst: int

    @property
    def unlimited(self) -> bool:
        return self.per_second <= 0

    @classmethod
    def parse(cls, text: str, burst: int | None = None) -> Rate:
        """``10/s``, ``600/m``, ``1000/h`` (or ``unlimited``); ``burst`` defaults to the number written
        (at least 1). Raises ValueError with what was expected."""
        text = text.strip()
        if text.lower() in UNLIMITED_WORDS:
            if burst is not None:
                raise ValueError("an unlimited rate takes no burst")
            return UNLIMITED
        found = _RATE.fullmatch(text)
        if found is None:
            raise ValueError(f"'{text}' is not a rate: write requests per period, e.g. 20/s, 600/m or 1000/h")
        count = float(found.group(1))
        if count <= 0:
            raise ValueError(f"'{text}': the rate must be above 0 (revoke a key to stop it)")
        if burst is not None and burst < 1:
            raise ValueError(f"the burst must be at least 1 (got {burst})")
        per_second = count / _PERIOD_SECONDS[found.group(2)[0].lower()]
        return cls(per_second, burst if burst is not None else max(1, math.ceil(count)))

    def __str__(self) -> str:
        if self.unlimited:
            return "unlimited"
        per_unit = [(unit, self.per_second * seconds) for unit, seconds in (("s", 1), ("m", 60), ("h", 3600))]
        for unit, count in per_unit:  # the first unit with a whole number: 600/m prints 10/s, 0.5/s 30/m
            if count >= 1 and abs(count - round(count)) < 1e-6:
                return f"{round(count)}/{unit}"
        unit, count = next(((u, c) for u, c in per_unit if c >= 1), per_unit[-1])
        return f"{round(count, 6):g}/{unit}"

    def describe(self) -> str:
        """``5/s (burst 5)``: the rate and its burst, for people."""
        return str(self) if self.unlimited else f"{self} (burst {self.burst})"


UNLIMITED = Rate(0.0, 0)


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    prefix: str  # the first characters of the key, for people to tell keys apart
    namespaces: tuple[str, ...] | None  # namespace ids the key is limited to; None = unlimited
    created_at: datetime
    revoked_at: datetime | None = None
    expires_at: datetime | None = None  # None: never
    rate: Rate | None = None  # None: the server's default (SIFTLINE_RATE_LIMIT); UNLIMITED: none at all

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class Feature:
    """One searchable output of a collection, addressed by its URI."""

    name: str  # the key in a document's "vectors" for user vectors; the output name otherwise
    kind: FeatureKind
    extractor: str  # "text_extractor" or "vectors" (user-supplied)
    version: str
    dimension: int | None = None
    metric: Metric | None = None
    source_fields: tuple[str, ...] = ()  # document fields whose text feeds the feature

    @cached_property
    def uri(self) -> str:
        return f"mixpeek://{self.extractor}@{self.version}/{self.name}"


@dataclass(frozen=True)
class PayloadIndex:
    field_name: str
    type: PayloadIndexType


@dataclass(frozen=True)
class Collection:
    collection_id: str
    namespace_id: str
    collection_name: str
    description: str | None
    feature_extractor: dict[str, Any] | None  # as given: name, version, input_mappings
    features: tuple[Feature, ...]
    payload_indexes: tuple[PayloadIndex, ...]
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    write_version: int = 0

    def feature(self, name_or_uri: str) -> Feature | None:
        for feat in self.features:
            if name_or_uri in (feat.uri, feat.name):
                return feat
        return None

    @cached_property
    def dense_features(self) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.kind == "dense")

    @cached_property
    def text_features(self) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.source_fields)


@dataclass
class Document:
    """A stored document: user fields (``payload``) at the root of the wire form."""

    document_id: str
    collection_id: str
    payload: dict[str, Any]
    internal: dict[str, Any] = field(default_factory=dict)
    vectors: dict[str, list[float]] | None = None  # only when asked for

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"document_id": self.document_id, "collection_id": self.collection_id}
        out.update(self.payload)
        out["_internal"] = self.internal
        if self.vectors is not None:
            out["vectors"] = self.vectors
        return out


@dataclass
class DocumentWrite:
    """What ingest hands storage: the document plus its computed feature data."""

    document_id: str
    payload: dict[str, Any]
    internal: dict[str, Any]
    vectors: dict[str, np.ndarray]  # feature name → float32 vector
    texts: dict[str, str]  # bm25 feature name → indexed text


@dataclass(frozen=True)
class SortSpec:
    field: str
    direction: Literal["asc", "desc"] = "asc"


@dataclass
class DocumentPage:
    documents: list[Document]
    next_cursor: str | None
    total: int | None


@dataclass(frozen=True)
class StorageFigures:
    """What a backend holds and is doing, read for the metrics gauges (``Storage.figures``)."""

    collections: int  # in every namespace
    documents: int  # in every collection
    vectors_pending: int  # written but not yet in an HNSW index (this server's indexes; 0 when none wait)
    index_builds: int  # HNSW index builds this server is running now


@dataclass(frozen=True)
class Retriever:
    """A named, stored pipeline of stages over some collections of one namespace."""

    retriever_id: str
    namespace_id: str
    retriever_name: str
    description: str | None
    collection_ids: tuple[str, ...]
    stages: tuple[dict[str, Any], ...]  # normalised stage configs, as validated at creation
    input_schema: dict[str, dict[str, Any]]
    budget_limits: dict[str, Any]
    cache_config: dict[str, Any]
    tags: tuple[str, ...]
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    version: int = 1


@dataclass
class ExecutionRecord:
    """One execution as stored: indexed fields, the evolving detail, and the returned documents."""

    execution_id: str
    namespace_id: str
    retriever_id: str | None
    mode: Literal["saved", "adhoc"]
    status: str  # pending → processing → completed | failed
    created_at: datetime
    completed_at: datetime | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    documents: list[dict[str, Any]] | None = None  # None: not retained (or not finished)
    owner: str | None = None  # the server running it (``Storage.server_id``); recovery fails only dead ones'


@dataclass(frozen=True)
class CacheEntry:
    """A cached value (an execution's result, or one stage's output) as a backend stores it.

    ``value`` is opaque to storage (the service encodes it); times are Unix seconds; ``expires_at``
    None means the entry is kept until evicted (least recently used first).
    """

    cache_key: str
    namespace_id: str
    kind: Literal["result", "stage"]
    value: bytes
    created_at: float
    expires_at: float | None = None
    retriever_id: str | None = None
    execution_id: str | None = None


@dataclass(frozen=True)
class Interaction:
    """A user's interaction with one result of an execution (a click, a view, a purchase …)."""

    interaction_id: str
    namespace_id: str
    execution_id: str | None
    retriever_id: str | None
    feature_id: str  # the document id
    interaction_types: tuple[str, ...]
    position: int
    recorded_at: datetime
    occurred_at: datetime
    user_id: str | None = None
    session_id: str | None = None
    feature_uri: str | None = None
    document_score: float | None = None
    result_set_size: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    query_snapshot: dict[str, Any] | None = None
    dedupe_key: str = ""  # what makes two interactions the same (for dropping retries)


@dataclass(frozen=True)
class InteractionQuery:
    """Filters of an interaction list (all optional, ANDed)."""

    execution_id: str | None = None
    retriever_id: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    feature_id: str | None = None
    interaction_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class Posterior:
    """A search leg's Beta posterior in one learned-fusion context (as stored: before decay since
    ``updated_at``, Unix seconds)."""

    feature_uri: str
    alpha: float
    beta: float
    interactions: float
    updated_at: float


@dataclass(frozen=True)
class PosteriorUpdate:
    """Evidence for one leg in one context; ``decay`` per day and the prior say how older evidence fades."""

    level: str
    context_key: str
    feature_uri: str
    success: float
    failure: float
    prior_alpha: float
    prior_beta: float
    decay: float

    def applied(self, alpha: float, beta: float, updated_at: float, now: float) -> tuple[float, float]:
        """A posterior last updated at ``updated_at`` (Unix seconds), faded toward the prior by ``decay``
        per day until ``now``, with this evidence added: the new (alpha, beta)."""
        fade = self.decay ** max(0.0, (now - updated_at) / 86_400.0)
        return (
            self.prior_alpha + (alpha - self.prior_alpha) * fade + self.success,
            self.prior_beta + (beta - self.prior_beta) * fade + self.failure,
        )


@dataclass(frozen=True)
class EvaluationDataset:
    """Judged queries: per query an input for the retriever and the relevant documents (with grades)."""

    dataset_id: str
    namespace_id: str
    dataset_name: str
    description: str | None
    queries: list[
        dict[str, Any]
    ]  # GroundTruthQuery: query_id, query_input, relevant_documents, relevance_scores
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass
class EvaluationRun:
    """One evaluation of a retriever (at a version) on a dataset; filled in as it runs."""

    evaluation_id: str
    namespace_id: str
    retriever_id: str
    retriever_version: int
    dataset_id: str
    dataset_name: str
    config: dict[str, Any]  # k_values, metrics
    status: str  # pending | in_progress | completed | failed
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)  # overall_metrics, metrics_by_k, query_results, …
    error_message: str | None = None
    owner: str | None = None  # the server running it (``Storage.server_id``); recovery fails only dead ones'
