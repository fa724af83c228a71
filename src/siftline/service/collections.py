"""Collections: names, declared features (text_extractor@v1, user vectors) and payload indexes."""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from typing import Any, cast

from siftline.errors import NotFoundError, ValidationError
from siftline.features.embedder import DIMENSION
from siftline.ids import new_id
from siftline.models import (
    TEXT_BM25_OUTPUT,
    TEXT_DENSE_OUTPUT,
    TEXT_EXTRACTOR,
    TEXT_EXTRACTOR_VERSION,
    USER_VECTOR_EXTRACTOR,
    Collection,
    Feature,
    Metric,
    Namespace,
    PayloadIndex,
    utcnow,
)
from siftline.storage.base import Storage

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_VECTOR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
METRICS = ("cosine", "dot_product", "euclidean")
INDEX_TYPES = ("keyword", "integer", "float", "bool", "datetime", "text")
EXTRACTORS = {f"{TEXT_EXTRACTOR}@{TEXT_EXTRACTOR_VERSION}"}
MAX_DIMENSION = 4096


def _text_features(extractor: dict[str, Any]) -> tuple[dict[str, Any], list[Feature]]:
    name = extractor.get("feature_extractor_name")
    version = extractor.get("version") or TEXT_EXTRACTOR_VERSION
    loc = ["body", "feature_extractor"]
    if f"{name}@{version}" not in EXTRACTORS:
        raise ValidationError.at(
            [*loc, "feature_extractor_name"],
            f"unknown feature extractor '{name}@{version}'; available: {', '.join(sorted(EXTRACTORS))}",
        )
    mappings = extractor.get("input_mappings") or {"text": "text"}
    source = mappings.get("text")
    fields = [source] if isinstance(source, str) else source
    if (
        not isinstance(fields, list)
        or not fields
        or not all(isinstance(f, str) and f.strip() for f in fields)
        or set(mappings) != {"text"}
    ):
        raise ValidationError.at(
            [*loc, "input_mappings"],
            "text_extractor takes one mapping, 'text': a document field name or a list of field names "
            'whose values are joined with a space, e.g. {"text": "text"} or {"text": ["title", "text"]}',
        )
    sources = tuple(fields)
    stored = {"feature_extractor_name": name, "version": version, "input_mappings": {"text": source}}
    features = [
        Feature(TEXT_DENSE_OUTPUT, "dense", TEXT_EXTRACTOR, version, DIMENSION, "cosine", sources),
        Feature(TEXT_BM25_OUTPUT, "bm25", TEXT_EXTRACTOR, version, None, None, sources),
    ]
    return stored, features


def _vector_features(configs: list[dict[str, Any]]) -> list[Feature]:
    features: list[Feature] = []
    seen: set[str] = set()
    for i, cfg in enumerate(configs):
        loc: list[str | int] = ["body", "vector_configs", i]
        name, dim, metric = cfg.get("name"), cfg.get("dimension"), cfg.get("metric") or "cosine"
        if not isinstance(name, str) or not _VECTOR_NAME.match(name):
            raise ValidationError.at([*loc, "name"], "a vector name has 1-64 letters, digits, '_' or '-'")
        if name in seen or name in (TEXT_DENSE_OUTPUT, TEXT_BM25_OUTPUT):
            raise ValidationError.at(
                [*loc, "name"], f"the vector name '{name}' is already used in this collection"
            )
        if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= MAX_DIMENSION:
            raise ValidationError.at(
                [*loc, "dimension"], f"dimension must be an integer from 1 to {MAX_DIMENSION}"
            )
        if metric not in METRICS:
            raise ValidationError.at([*loc, "metric"], f"metric must be one of {', '.join(METRICS)}")
        seen.add(name)
        features.append(Feature(name, "dense", USER_VECTOR_EXTRACTOR, "v1", dim, cast(Metric, metric)))
    return features


def _payload_indexes(configs: list[dict[str, Any]]) -> tuple[PayloadIndex, ...]:
    out: dict[str, PayloadIndex] = {}
    for i, cfg in enumerate(configs):
        loc: list[str | int] = ["body", "payload_indexes", i]
        field, kind = cfg.get("field_name"), cfg.get("type")
        if not isinstance(field, str) or not field.strip() or field.startswith("_internal"):
            raise ValidationError.at(
                [*loc, "field_name"], "field_name must be a document field path, e.g. 'category'"
            )
        if kind not in INDEX_TYPES:
            raise ValidationError.at([*loc, "type"], f"type must be one of {', '.join(INDEX_TYPES)}")
        if field in out:
            raise ValidationError.at([*loc, "field_name"], f"'{field}' is indexed twice")
        out[field] = PayloadIndex(field, kind)
    return tuple(out.values())


def validate_name(name: Any, loc: list[str | int]) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name.startswith("col_"):
        raise ValidationError.at(
            loc,
            "a collection name has 1-100 letters, digits, '_', '-' or '.', starts with a letter or digit, "
            "and does not start with 'col_'",
        )
    return name


def create(
    storage: Storage,
    namespace: Namespace,
    *,
    collection_name: str,
    description: str | None = None,
    feature_extractor: dict[str, Any] | None = None,
    vector_configs: list[dict[str, Any]] | None = None,
    payload_indexes: list[dict[str, Any]] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Collection:
    validate_name(collection_name, ["body", "collection_name"])
    stored_extractor, features = _text_features(feature_extractor) if feature_extractor else (None, [])
    features += _vector_features(vector_configs or [])
    if not features:
        raise ValidationError.at(
            ["body"],
            "a collection needs at least one feature: a feature_extractor (text_extractor@v1) "
            "or one or more vector_configs",
        )
    now = utcnow()
    collection = Collection(
        collection_id=new_id("col"),
        namespace_id=namespace.namespace_id,
        collection_name=collection_name,
        description=description,
        feature_extractor=stored_extractor,
        features=tuple(features),
        payload_indexes=_payload_indexes(payload_indexes or []),
        metadata=metadata or {},
        created_at=now,
        updated_at=now,
    )
    storage.create_collection(collection)
    return collection


def get(storage: Storage, namespace: Namespace, identifier: str) -> Collection:
    collection = storage.get_collection(namespace.namespace_id, identifier)
    if collection is None:
        raise NotFoundError(
            f"Collection '{identifier}' not found in namespace '{namespace.namespace_name}'; "
            "list collections with POST /v1/collections/list."
        )
    return collection


def update(storage: Storage, collection: Collection, changes: dict[str, Any]) -> Collection:
    fields: dict[str, Any] = {}
    if changes.get("collection_name") is not None:
        fields["collection_name"] = validate_name(changes["collection_name"], ["body", "collection_name"])
    if "description" in changes:
        fields["description"] = changes["description"]
    if changes.get("metadata") is not None:
        fields["metadata"] = changes["metadata"]
    if changes.get("payload_indexes") is not None:
        fields["payload_indexes"] = _payload_indexes(changes["payload_indexes"])
    updated = replace(collection, **fields, updated_at=utcnow())
    storage.update_collection(updated)
    return updated


def delete(storage: Storage, collection: Collection) -> None:
    storage.delete_collection(collection)


def describe_features(collection: Collection) -> list[dict[str, Any]]:
    return [
        {
            "feature_uri": f.uri,
            "feature_address": f.uri,
            "name": f.name,
            "type": f.kind,
            "dimension": f.dimension,
            "metric": f.metric,
            "extractor": f"{f.extractor}@{f.version}",
            "source_fields": list(f.source_fields),
        }
        for f in collection.features
    ]


def vector_indexes(storage: Storage, collection: Collection) -> list[dict[str, Any]]:
    """The index status of each dense feature."""
    return [
        {"name": f.name, "feature_uri": f.uri, **storage.vector_index_status(collection, f)}
        for f in collection.dense_features
    ]


def build_vector_indexes(storage: Storage, collection: Collection, *, wait: bool) -> list[dict[str, Any]]:
    """Build every dense feature's index now (``wait``) or in a background thread."""

    def build() -> None:
        for feature in collection.dense_features:
            storage.build_vector_index(collection, feature)

    if wait:
        build()
    else:
        threading.Thread(target=build, name="siftline-build", daemon=True).start()
    return vector_indexes(storage, collection)
