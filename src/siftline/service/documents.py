"""Documents: validation, feature computation (embedding, BM25 text) and storage calls.

A create body is the document itself: every key that is not reserved is a user field, stored and
returned at the document root. ``vectors`` carries client vectors by feature name or URI (a client
vector for the text extractor's dense feature skips the model). ``_internal`` is system-managed:
ignored on input, so a document read can be written back unchanged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Sequence
from typing import Any, Protocol, cast

import numpy as np
import orjson

from siftline.errors import BadRequestError, NotFoundError, ValidationError
from siftline.filters import Node, bind, parse_filter
from siftline.ids import new_id
from siftline.models import (
    VECTOR_COMPONENT_MAX,
    Collection,
    Document,
    DocumentPage,
    DocumentWrite,
    Feature,
    SortSpec,
    iso,
    utcnow,
)
from siftline.storage.base import Storage

BM25_VERSION = "siftline-bm25-porter-1"  # siftline.storage.text: analysis and formula
RESERVED_IDS = ("count",)  # GET …/documents/count is a route, so no document may be called that
RESERVED = ("document_id", "collection_id", "vectors", "_internal")
_DOC_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def _source_text(payload: dict[str, Any], fields: Sequence[str]) -> str:
    parts: list[str] = []
    for path in fields:
        value: Any = payload
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, list):
            parts.extend(
                str(v) for v in value if isinstance(v, str | int | float) and not isinstance(v, bool)
            )
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            parts.append(str(value))
    return " ".join(p for p in parts if p.strip())


def _vector(collection: Collection, key: str, value: Any, loc: list[str | int]) -> tuple[Feature, np.ndarray]:
    feature = collection.feature(key)
    if feature is None or feature.kind != "dense":
        names = ", ".join(f.name for f in collection.dense_features) or "none"
        raise ValidationError.at(
            [*loc, key], f"the collection has no vector feature '{key}' (its vectors: {names})"
        )
    vector = _decode_vector(value)
    if vector is None:
        raise ValidationError.at(
            [*loc, key],
            f"a vector is a list of finite numbers with |x| ≤ {VECTOR_COMPONENT_MAX:.0e}, or a base64 string "
            "of little-endian float32 bytes",
        )
    if vector.shape[0] != feature.dimension:
        raise ValidationError.at(
            [*loc, key],
            f"vector '{feature.name}' has {vector.shape[0]} dimensions; the collection declares "
            f"{feature.dimension}",
        )
    return feature, vector


def content_hash(payload: dict[str, Any]) -> str:
    """SHA-256 of the user fields as canonical JSON (keys sorted), so field order does not matter."""
    try:
        canonical = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # integers past 64 bits
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(canonical).hexdigest()


_NUMBER_TYPES = frozenset({int, float})
DECODE_SLICE = 500  # base64 vectors decoded per call (about 1 MB)


def _decode_vector(value: Any) -> np.ndarray | None:
    """A float32 vector from a list of numbers or a base64 float32 string; None when it is not one."""
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        if not raw or len(raw) % 4:
            return None
        vector = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    elif isinstance(value, list) and value and set(map(type, value)) <= _NUMBER_TYPES:
        try:
            wide = np.asarray(value, dtype=np.float64)
        except OverflowError:  # an integer too large for a double
            return None
        if not np.all(np.abs(wide) <= VECTOR_COMPONENT_MAX):  # also false for NaN and ±inf
            return None
        vector = wide.astype(np.float32)
    else:
        return None
    return vector if _in_range(vector) else None


def _in_range(vectors: np.ndarray) -> bool:
    """Every component finite and within ±VECTOR_COMPONENT_MAX."""
    return bool(np.all(np.abs(vectors) <= VECTOR_COMPONENT_MAX))  # false for NaN and ±inf too


def _predecode(collection: Collection, docs: list[Any]) -> dict[str, np.ndarray]:
    """Base64 vectors of a whole batch decoded in one call per vector name (the bulk-load fast path).

    Applies to a name when every document sends it as an unpadded base64 string of the feature's exact
    size; otherwise that name's vectors are decoded (and their errors reported) one by one.
    """
    out: dict[str, np.ndarray] = {}
    first = docs[0].get("vectors") if docs and isinstance(docs[0], dict) else None
    if not isinstance(first, dict):
        return out
    for key in first:
        feature = collection.feature(key)
        if feature is None or feature.kind != "dense" or not feature.dimension or (4 * feature.dimension) % 3:
            continue
        size = 4 * feature.dimension * 4 // 3  # base64 length of `dimension` float32s (no padding)
        values = [d.get("vectors", {}).get(key) if isinstance(d, dict) else None for d in docs]
        if not all(type(v) is str and len(v) == size for v in values):
            continue
        matrix = np.empty((len(docs), feature.dimension), dtype=np.float32)
        try:  # in slices: one long call would hold the GIL while another request's SQLite work waits for it
            for start in range(0, len(values), DECODE_SLICE):
                # without validate, stray characters are dropped: the length check catches them
                raw = base64.b64decode("".join(cast(list[str], values[start : start + DECODE_SLICE])))
                rows = min(DECODE_SLICE, len(values) - start)
                if len(raw) != 4 * feature.dimension * rows:
                    raise ValueError("length")
                matrix[start : start + rows] = np.frombuffer(raw, dtype="<f4").reshape(
                    rows, feature.dimension
                )
        except (binascii.Error, ValueError):
            continue
        if _in_range(matrix):
            out[key] = matrix
    return out


def _split(
    collection: Collection, body: Any, loc: list[str | int], decoded: dict[str, np.ndarray] | None = None
) -> tuple[str | None, dict[str, Any], dict[str, np.ndarray]]:
    """(document_id, user fields, client vectors) of one create body, validated."""
    if not isinstance(body, dict):
        raise ValidationError.at(loc, "a document is a JSON object of fields")
    doc_id = body.get("document_id")
    if doc_id is not None and (not isinstance(doc_id, str) or not _DOC_ID.match(doc_id)):
        raise ValidationError.at(
            [*loc, "document_id"], "document_id has 1-128 letters, digits, '_', '-', '.' or ':'"
        )
    if doc_id in RESERVED_IDS:
        raise ValidationError.at([*loc, "document_id"], f"'{doc_id}' is reserved; choose another document_id")
    col = body.get("collection_id")
    if col is not None and col not in (collection.collection_id, collection.collection_name):
        raise ValidationError.at(
            [*loc, "collection_id"], f"collection_id '{col}' does not match the collection of the URL"
        )
    raw_vectors = body.get("vectors") or {}
    if not isinstance(raw_vectors, dict):
        raise ValidationError.at([*loc, "vectors"], 'vectors is an object: {"<vector name>": [numbers]}')
    vectors: dict[str, np.ndarray] = {}
    for key, value in raw_vectors.items():
        if decoded is not None and key in decoded:
            vectors[collection.feature(key).name] = decoded[key]  # type: ignore[union-attr]
            continue
        feature, vec = _vector(collection, key, value, [*loc, "vectors"])
        vectors[feature.name] = vec
    payload = {k: v for k, v in body.items() if k not in RESERVED}
    _check_finite(payload, loc)
    return doc_id, payload, vectors


def _check_finite(value: Any, loc: list[str | int]) -> None:
    """JSON has no NaN or Infinity: refuse them (Python's parser lets them through)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError.at(loc, "NaN and Infinity are not JSON numbers; send a finite number or null")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue  # the common case, without a call
        _check_finite(item, [*loc, key])


class DocumentService:
    def __init__(self, storage: Storage, embedder: Embedder, max_batch: int) -> None:
        self.storage = storage
        self.embedder = embedder
        self.max_batch = max_batch

    # -- building writes ----------------------------------------------------------------------

    def _writes(
        self,
        collection: Collection,
        items: list[tuple[str, dict[str, Any], dict[str, np.ndarray]]],
        created: dict[str, str] | None = None,
    ) -> list[DocumentWrite]:
        now = iso(utcnow())
        writes: list[DocumentWrite] = []
        to_embed: list[tuple[int, str, str]] = []  # (write index, feature name, text)
        for doc_id, payload, vectors in items:
            versions: dict[str, str] = {}
            internal: dict[str, Any] = {
                "created_at": (created or {}).get(doc_id, now),
                "updated_at": now,
                "content_hash": content_hash(payload),
                "feature_versions": versions,
            }
            write = DocumentWrite(doc_id, payload, internal, dict(vectors), {})
            texts: dict[tuple[str, ...], str] = {}
            for feature in collection.text_features:
                text = texts.get(feature.source_fields)
                if text is None:
                    text = texts[feature.source_fields] = _source_text(payload, feature.source_fields)
                if feature.kind == "bm25":
                    write.texts[feature.name] = text
                elif feature.name not in write.vectors and text:
                    to_embed.append((len(writes), feature.name, text))
                if text or feature.name in write.vectors:
                    versions[feature.uri] = BM25_VERSION if feature.kind == "bm25" else self.embedder.name
            writes.append(write)
        if to_embed:
            matrix = self.embedder.embed([t for _, _, t in to_embed])
            for (i, name, _), vec in zip(to_embed, matrix, strict=True):
                writes[i].vectors[name] = vec
        return writes

    # -- commands -----------------------------------------------------------------------------

    def create(self, collection: Collection, body: Any) -> Document:
        doc_id, payload, vectors = _split(collection, body, ["body"])
        doc_id = doc_id or new_id("doc")
        self.storage.put_documents(
            collection, self._writes(collection, [(doc_id, payload, vectors)]), replace=False
        )
        return self.get(collection, doc_id)

    def create_batch(self, collection: Collection, body: Any, *, replace: bool = False) -> list[str]:
        """Create (or, with ``replace``, upsert) the documents of ``{"documents": [...]}`` in one transaction."""
        if not isinstance(body, dict):
            raise ValidationError.at(["body"], 'the batch body is a JSON object: {"documents": [ ... ]}')
        docs = body.get("documents")
        if not isinstance(docs, list):
            raise ValidationError.at(["body", "documents"], 'the batch body is {"documents": [ ... ]}')
        if len(docs) > self.max_batch:
            raise BadRequestError(
                f"The batch has {len(docs)} documents; the limit is {self.max_batch} per request. "
                "Split it into several requests.",
                {"documents": len(docs), "max_batch_documents": self.max_batch},
            )
        if not docs:
            raise ValidationError.at(["body", "documents"], "the batch holds no documents")
        items = []
        seen: set[str] = set()
        bulk = _predecode(collection, docs)
        for i, raw in enumerate(docs):
            row = {key: matrix[i] for key, matrix in bulk.items()}
            doc_id, payload, vectors = _split(collection, raw, ["body", "documents", i], row)
            doc_id = doc_id or new_id("doc")
            if doc_id in seen:
                raise ValidationError.at(
                    ["body", "documents", i, "document_id"], f"'{doc_id}' appears twice in the batch"
                )
            seen.add(doc_id)
            items.append((doc_id, payload, vectors))
        self.storage.put_documents(collection, self._writes(collection, items), replace=replace)
        return [doc_id for doc_id, _, _ in items]

    def get(self, collection: Collection, document_id: str, with_vectors: bool = False) -> Document:
        found = self.storage.get_documents(collection, [document_id], with_vectors=with_vectors)
        if not found:
            raise NotFoundError(
                f"Document '{document_id}' not found in collection '{collection.collection_name}'."
            )
        return found[0]

    def replace(self, collection: Collection, document_id: str, body: Any) -> Document:
        current = self.get(collection, document_id)
        body_id, payload, vectors = _split(collection, body, ["body"])
        if body_id is not None and body_id != document_id:
            raise ValidationError.at(["body", "document_id"], "document_id in the body differs from the URL")
        created = {document_id: current.internal.get("created_at", iso(utcnow()))}
        writes = self._writes(collection, [(document_id, payload, vectors)], created)
        self.storage.put_documents(collection, writes, replace=True)
        return self.get(collection, document_id)

    def patch(self, collection: Collection, document_id: str, body: Any) -> Document:
        """JSON merge patch (RFC 7386) of the user fields; named vectors in ``vectors`` are replaced."""
        current = self.get(collection, document_id, with_vectors=True)
        if not isinstance(body, dict):
            raise ValidationError.at(
                ["body"], "a patch is a JSON object of fields to change (null removes a field)"
            )
        body_id, changes, vectors = _split(collection, body, ["body"])
        if body_id is not None and body_id != document_id:
            raise ValidationError.at(["body", "document_id"], "document_id in the body differs from the URL")
        payload = _merge(current.payload, changes)
        kept = {name: np.asarray(v, dtype=np.float32) for name, v in (current.vectors or {}).items()}
        for feature in collection.text_features:  # text changed → the model re-embeds it
            if feature.kind == "dense" and _source_text(payload, feature.source_fields) != _source_text(
                current.payload, feature.source_fields
            ):
                kept.pop(feature.name, None)
        kept.update(vectors)
        created = {document_id: current.internal.get("created_at", iso(utcnow()))}
        self.storage.put_documents(
            collection, self._writes(collection, [(document_id, payload, kept)], created), replace=True
        )
        return self.get(collection, document_id)

    def delete(self, collection: Collection, document_id: str) -> None:
        if self.storage.delete_documents(collection, [document_id]) == 0:
            raise NotFoundError(
                f"Document '{document_id}' not found in collection '{collection.collection_name}'."
            )

    def list(
        self,
        collection: Collection,
        *,
        filters: Any = None,
        sort: Any = None,
        limit: int = 10,
        offset: int = 0,
        cursor: str | None = None,
        include_total: bool = False,
        return_vectors: bool = False,
    ) -> DocumentPage:
        return self.storage.list_documents(
            collection,
            filter=parse_static_filter(filters),
            sort=parse_sort(sort),
            limit=limit,
            offset=offset,
            cursor=cursor,
            include_total=include_total,
            with_vectors=return_vectors,
        )

    def count(self, collection: Collection, filters: Any = None) -> int:
        return self.storage.count_documents(collection, parse_static_filter(filters))


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_static_filter(filters: Any, loc: tuple[str, ...] = ("body", "filters")) -> Node | None:
    """A filter with no retriever inputs to bind: dynamic values are refused."""
    node = parse_filter(filters, loc)
    if node is None:
        return None
    bound, relaxed = bind(node, {})
    if relaxed:
        raise ValidationError.at(
            list(loc), "dynamic filter values need retriever inputs; use plain values when listing documents"
        )
    return bound


def parse_sort(sort: Any) -> SortSpec | None:
    if sort is None:
        return None
    if not isinstance(sort, dict) or not isinstance(sort.get("field"), str) or not sort["field"].strip():
        raise ValidationError.at(
            ["body", "sort"], 'sort is {"field": "<dotted path>", "direction": "asc"|"desc"}'
        )
    field = sort["field"]
    if any(not part for part in field.split(".")) or any(ch in field for ch in '"\\\0'):
        raise ValidationError.at(
            ["body", "sort", "field"],
            f"cannot sort on {field}: write a dotted path of non-empty names without quotes or backslashes, "
            "e.g. metadata.year",
        )
    direction = sort.get("direction") or "asc"
    if direction not in ("asc", "desc"):
        raise ValidationError.at(["body", "sort", "direction"], "direction is 'asc' or 'desc'")
    return SortSpec(sort["field"], "desc" if direction == "desc" else "asc")
