"""Caches: the retriever result cache, stage-output caches and the query-embedding LRU.

**Result cache** (``cache_config`` on a retriever or an ad-hoc request). The key is a SHA-256 of
everything that can change the answer: the retriever's id and a hash of its stages, input schema and
collections (for ad hoc: of the stages and collections), the canonical inputs (defaults applied),
the request filters, the page asked for, ``return_vectors``, ``exclude_fields``, and the
``write_version`` of every collection the pipeline reads. Storage bumps a collection's version in the
same transaction as each document write, delete and collection change, and the executor reads the
versions when the execution starts, so a write acknowledged before an execution starts is always
seen by it: a stale result can't be served. Entries live in the storage backend (bounded, LRU,
expired ones purged), so they survive restarts and are shared by servers over one database.
Only completed runs are stored; runs of non-deterministic pipelines (``sample`` without a seed,
templates over ``CONTEXT``) are never cached. ``exclude_fields`` are removed from the stored documents
and read back from storage on a hit (fields that only a stage computed come back absent).

**Stage caches.** A stage with ``cache_behavior: aggressive``, or named in
``cache_config.cache_stage_names``, has its output cached in the same store, keyed by its rendered
parameters, its input candidates, the inputs, request filters, ``return_vectors`` and the collections'
write versions. **Query embeddings** are kept in an in-memory LRU keyed by model and text.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

import siftline.pipeline.templates as templates
from siftline.errors import ValidationError
from siftline.filters import MISSING, get_path
from siftline.models import CacheEntry, Collection
from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import CachedStage, Embedder, ExecutionContext
from siftline.pipeline.plan import MAX_CACHE_TTL_S, Plan
from siftline.service.records import canonical_json
from siftline.storage.base import Storage

DEFAULT_TTL_S = 3600
CONFIG_KEYS = ("enabled", "ttl_seconds", "cache_stage_names", "exclude_fields", "stats")
_NOT_REPEATABLE = ("CONTEXT", "context")


@dataclass(frozen=True)
class CacheConfig:
    enabled: bool = False
    ttl_seconds: int = DEFAULT_TTL_S
    cache_stage_names: tuple[str, ...] = ()
    exclude_fields: tuple[str, ...] = ()


def validate_cache_config(raw: Any, loc: list[str | int], stage_names: list[str]) -> dict[str, Any]:
    """The normalised ``cache_config`` (``{}``: caching off); a bad value is a 422 naming the field."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValidationError.at(
            loc, "cache_config is {enabled, ttl_seconds, cache_stage_names, exclude_fields}"
        )
    unknown = sorted(set(raw) - set(CONFIG_KEYS))
    if unknown:
        raise ValidationError.at(
            [*loc, unknown[0]], f"cache_config has no '{unknown[0]}'; known: {', '.join(CONFIG_KEYS[:4])}"
        )
    enabled = raw.get("enabled", True)
    if enabled is None:
        enabled = True
    if not isinstance(enabled, bool):
        raise ValidationError.at([*loc, "enabled"], "enabled is true or false")
    ttl = raw.get("ttl_seconds", DEFAULT_TTL_S)
    ttl = DEFAULT_TTL_S if ttl is None else ttl
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= MAX_CACHE_TTL_S:
        raise ValidationError.at(
            [*loc, "ttl_seconds"], f"ttl_seconds is an integer from 0 to {MAX_CACHE_TTL_S}"
        )
    names = raw.get("cache_stage_names")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValidationError.at(
                [*loc, "cache_stage_names"], "cache_stage_names is a list of stage names"
            )
        for i, name in enumerate(names):
            if name not in stage_names:
                raise ValidationError.at(
                    [*loc, "cache_stage_names", i],
                    f"no stage is named '{name}'; the stages are: {', '.join(stage_names)}",
                )
    fields = raw.get("exclude_fields")
    if fields is not None and (
        not isinstance(fields, list) or not all(isinstance(f, str) and f.strip() for f in fields)
    ):
        raise ValidationError.at([*loc, "exclude_fields"], "exclude_fields is a list of dotted field paths")
    out: dict[str, Any] = {"enabled": enabled, "ttl_seconds": ttl}
    if names:
        out["cache_stage_names"] = list(dict.fromkeys(names))
    if fields:
        out["exclude_fields"] = list(dict.fromkeys(fields))
    return out


def config_of(stored: dict[str, Any] | None) -> CacheConfig:
    if not stored:
        return CacheConfig()
    return CacheConfig(
        bool(stored.get("enabled", True)),
        int(stored.get("ttl_seconds", DEFAULT_TTL_S)),
        tuple(stored.get("cache_stage_names") or ()),
        tuple(stored.get("exclude_fields") or ()),
    )


def digest(*parts: Any) -> str:
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()


def etag(response: dict[str, Any]) -> str:
    """The entity tag of an execution's result: its documents and pagination."""
    body = orjson.dumps(
        [response.get("documents"), response.get("pagination")],
        option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
        default=str,
    )
    return '"' + hashlib.sha1(body).hexdigest() + '"'


def repeatable(plan: Plan) -> str | None:
    """Why this plan's results may differ between two runs over the same data (None: they can't)."""
    for stage in plan.stages:
        if stage.stage_id == "sample" and stage.parameters.get("seed") is None:
            return f"stage '{stage.name}' samples without a seed"
        if stage.stage_id == "feature_search" and stage.parameters.get("fusion") == "learned":
            return f"stage '{stage.name}' draws learned fusion weights anew for every execution"
        for source in templates.template_strings(stage.parameters):
            if any(word in source for word in _NOT_REPEATABLE):
                return f"stage '{stage.name}' reads CONTEXT, which changes from run to run"
    return None


def read_collections(
    storage: Storage, namespace_id: str, plan: Plan, targets: list[Collection]
) -> list[Any] | None:
    """``[collection_id, write_version]`` of every collection the plan reads (None: not knowable, e.g. a
    templated join target)."""
    versions = {c.collection_id: c.write_version for c in targets}
    for stage in plan.stages:
        if stage.stage_id != "document_enrich":
            continue
        ident = stage.parameters.get("target_collection_id")
        if not isinstance(ident, str) or templates.is_template(ident):
            return None
        found = storage.get_collection(namespace_id, ident)
        versions[found.collection_id if found else f"missing:{ident}"] = found.write_version if found else -1
    return sorted([k, v] for k, v in versions.items())


# -- candidates as bytes ----------------------------------------------------------------------------


def encode_candidates(candidates: list[Candidate]) -> list[dict[str, Any]]:
    return [
        {"d": c.document_id, "c": c.collection_id, "s": c.score, "f": c.fields, "i": c.internal,
         "v": c.vectors, "x": c.scores, "l": c.lineage}
        for c in candidates
    ]  # fmt: skip


def decode_candidates(rows: list[dict[str, Any]]) -> list[Candidate]:
    return [Candidate(r["d"], r["c"], r["s"], r["f"], r["i"], r["v"], r["x"], r.get("l")) for r in rows]


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS, default=str)


# -- result cache -------------------------------------------------------------------------------------


def strip_fields(documents: list[dict[str, Any]], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """Copies of the documents without ``fields`` (dotted paths), for storing."""
    return [_without(doc, fields) for doc in documents]


def _without(doc: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    out = dict(doc)
    for path in fields:
        *parents, last = path.split(".")
        node: Any = out
        chain = []
        for part in parents:
            if not isinstance(node, dict) or not isinstance(node.get(part), dict):
                node = None
                break
            chain.append((node, part))
            node[part] = dict(node[part])
            node = node[part]
        if isinstance(node, dict):
            node.pop(last, None)
    return out


def restore_fields(
    storage: Storage, namespace_id: str, documents: list[dict[str, Any]], fields: tuple[str, ...]
) -> None:
    """Put the excluded fields back from storage (in place), where the stored document has them."""
    if not fields or not documents:
        return
    by_collection: dict[str, list[str]] = {}
    for doc in documents:
        by_collection.setdefault(doc["collection_id"], []).append(doc["document_id"])
    stored: dict[tuple[str, str], dict[str, Any]] = {}
    for col_id, ids in by_collection.items():
        collection = storage.get_collection(namespace_id, col_id)
        if collection is not None:
            for found in storage.get_documents(collection, ids):
                stored[(col_id, found.document_id)] = found.as_dict()
    for doc in documents:
        source = stored.get((doc["collection_id"], doc["document_id"]))
        if source is None:
            continue
        for path in fields:
            value = get_path(source, path)
            if value is not MISSING:
                _put(doc, path, value)


def _put(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            return
    node[last] = value


class ResultCache:
    """Reads and writes executions' results in the storage backend."""

    def __init__(self, storage: Storage, max_entries: int, max_bytes: int) -> None:
        self.storage = storage
        self.max_entries = max_entries
        self.max_bytes = max_bytes

    def get(self, key: str) -> CacheEntry | None:
        entry = self.storage.cache_get(key, time.time())
        return entry if entry is not None and entry.kind == "result" else None

    def put(
        self,
        key: str,
        namespace_id: str,
        retriever_id: str | None,
        execution_id: str,
        ttl: int,
        body: dict[str, Any],
    ) -> None:
        now = time.time()
        entry = CacheEntry(
            key, namespace_id, "result", _dumps(body), now, now + ttl, retriever_id, execution_id
        )
        self.storage.cache_put(entry, self.max_entries, self.max_bytes)


# -- stage caches -------------------------------------------------------------------------------------


class StageOutputCache:
    """One execution's view of the stage-output cache (implements ``pipeline.context.StageCache``)."""

    def __init__(
        self,
        storage: Storage,
        namespace_id: str,
        base: list[Any],
        config: CacheConfig,
        max_entries: int,
        max_bytes: int,
    ) -> None:
        self.storage = storage
        self.namespace_id = namespace_id
        self.base = base  # inputs, request filters, return_vectors, collections' write versions
        self.config = config
        self.max_entries = max_entries
        self.max_bytes = max_bytes

    def wanted(self, stage_name: str, cache_behavior: str) -> bool:
        if cache_behavior == "disabled":
            return False
        named = self.config.enabled and stage_name in self.config.cache_stage_names
        return cache_behavior == "aggressive" or named

    def key(self, ctx: ExecutionContext, stage: Any, rendered: dict[str, Any], candidates: list[Any]) -> str:
        inputs = hashlib.sha256(_dumps(encode_candidates(candidates))).hexdigest()
        return digest("stage", self.namespace_id, stage.stage_id, rendered, stage.pre_filters, stage.post_filters,
                      self.base, inputs)  # fmt: skip

    def lookup(self, key: str) -> CachedStage | None:
        entry = self.storage.cache_get(key, time.time())
        if entry is None or entry.kind != "stage":
            return None
        data = orjson.loads(entry.value)
        return CachedStage(
            decode_candidates(data["candidates"]),
            data["metadata"],
            data["warnings"],
            data["limits"],
            entry.created_at,
        )

    def store(self, key: str, stage_name: str, ttl_seconds: int | None, value: CachedStage) -> None:
        ttl = ttl_seconds
        if ttl is None and stage_name in self.config.cache_stage_names:
            ttl = self.config.ttl_seconds
        body = {
            "candidates": encode_candidates(value.candidates),
            "metadata": value.metadata,
            "warnings": value.warnings,
            "limits": value.limits,
        }
        entry = CacheEntry(
            key, self.namespace_id, "stage", _dumps(body), value.cached_at,
            None if ttl is None else value.cached_at + ttl,
        )  # fmt: skip
        self.storage.cache_put(entry, self.max_entries, self.max_bytes)


class QueryEmbeddingCache:
    """Query embeddings in memory, least recently used evicted first; keyed by model and text."""

    def __init__(self, embedder: Embedder, size: int) -> None:
        self.embedder = embedder
        self.size = size
        self._entries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, text: str, use_cache: bool) -> tuple[np.ndarray, bool]:
        key = (self.embedder.name, text)
        if use_cache and self.size:
            with self._lock:
                found = self._entries.get(key)
                if found is not None:
                    self._entries.move_to_end(key)
                    return found, True
        vector = np.array(self.embedder.embed([text])[0], dtype=np.float32)
        vector.flags.writeable = False
        if self.size:
            with self._lock:
                self._entries[key] = vector
                self._entries.move_to_end(key)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        return vector, False
