"""Models to and from the JSON parts of their stored rows, the same for every backend.

A backend stores a retriever's definition, a collection's configuration, an interaction's details or
an evaluation as JSON beside its indexed columns; what goes into that JSON and how a model is rebuilt
from it lives here once, and each backend only encodes and decodes the text (SQLite ``TEXT``,
PostgreSQL ``json``) and converts its own column types.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from siftline.models import (
    Collection,
    EvaluationDataset,
    EvaluationRun,
    Feature,
    Interaction,
    PayloadIndex,
    Retriever,
    iso,
)


def time_of(value: str) -> datetime:
    """A stored ISO-8601 time (``…Z`` or with an offset)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def parse_time(value: str | None) -> datetime | None:
    return time_of(value) if value else None


# -- retrievers -----------------------------------------------------------------------------------


def retriever_config(r: Retriever) -> dict[str, Any]:
    return {
        "description": r.description,
        "collection_ids": list(r.collection_ids),
        "stages": list(r.stages),
        "input_schema": r.input_schema,
        "budget_limits": r.budget_limits,
        "cache_config": r.cache_config,
        "tags": list(r.tags),
        "metadata": r.metadata,
    }


def retriever_of(
    retriever_id: str, namespace_id: str, name: str, cfg: dict[str, Any],
    created_at: datetime, updated_at: datetime, version: int,
) -> Retriever:  # fmt: skip
    return Retriever(
        retriever_id=retriever_id,
        namespace_id=namespace_id,
        retriever_name=name,
        description=cfg.get("description"),
        collection_ids=tuple(cfg.get("collection_ids", ())),
        stages=tuple(cfg.get("stages", ())),
        input_schema=cfg.get("input_schema") or {},
        budget_limits=cfg.get("budget_limits") or {},
        cache_config=cfg.get("cache_config") or {},
        tags=tuple(cfg.get("tags", ())),
        metadata=cfg.get("metadata") or {},
        created_at=created_at,
        updated_at=updated_at,
        version=version,
    )


# -- collections ----------------------------------------------------------------------------------


def collection_config(collection: Collection) -> dict[str, Any]:
    return {
        "feature_extractor": collection.feature_extractor,
        "features": [asdict(f) for f in collection.features],
        "payload_indexes": [asdict(p) for p in collection.payload_indexes],
        "metadata": collection.metadata,
    }


def collection_of(
    collection_id: str, namespace_id: str, name: str, description: str | None, cfg: dict[str, Any],
    created_at: datetime, updated_at: datetime, write_version: int,
) -> Collection:  # fmt: skip
    return Collection(
        collection_id=collection_id,
        namespace_id=namespace_id,
        collection_name=name,
        description=description,
        feature_extractor=cfg.get("feature_extractor"),
        features=tuple(
            Feature(**{**f, "source_fields": tuple(f.get("source_fields", ()))}) for f in cfg["features"]
        ),
        payload_indexes=tuple(PayloadIndex(**p) for p in cfg.get("payload_indexes", [])),
        metadata=cfg.get("metadata") or {},
        created_at=created_at,
        updated_at=updated_at,
        write_version=int(write_version),
    )


# -- interactions ---------------------------------------------------------------------------------


def interaction_body(i: Interaction) -> dict[str, Any]:
    """What an interaction keeps beside its indexed columns."""
    return {
        "feature_uri": i.feature_uri,
        "document_score": i.document_score,
        "result_set_size": i.result_set_size,
        "metadata": i.metadata,
        "query_snapshot": i.query_snapshot,
    }


def interaction_of(
    columns: tuple[Any, ...], types: list[str], recorded_at: datetime, occurred_at: datetime,
    body: dict[str, Any],
) -> Interaction:  # fmt: skip
    """From the columns (interaction_id, namespace_id, execution_id, retriever_id, feature_id, types,
    position, user_id, session_id, recorded_at, occurred_at, dedupe_key, body) with types, times and
    body already decoded."""
    iid, ns, ex, ret, feat, _, pos, user, session, _, _, key, _ = columns
    return Interaction(
        interaction_id=iid,
        namespace_id=ns,
        execution_id=ex,
        retriever_id=ret,
        feature_id=feat,
        interaction_types=tuple(types),
        position=pos,
        recorded_at=recorded_at,
        occurred_at=occurred_at,
        user_id=user,
        session_id=session,
        feature_uri=body.get("feature_uri"),
        document_score=body.get("document_score"),
        result_set_size=body.get("result_set_size"),
        metadata=body.get("metadata") or {},
        query_snapshot=body.get("query_snapshot"),
        dedupe_key=key,
    )


# -- evaluations ----------------------------------------------------------------------------------


def evaluation_body(obj: EvaluationDataset | EvaluationRun) -> dict[str, Any]:
    """A dataset or run as JSON-ready data (times as ISO text)."""
    data = asdict(obj)
    for key in ("created_at", "updated_at", "completed_at"):
        if key in data:
            data[key] = iso(data[key]) if data[key] is not None else None
    return data


def dataset_of(body: dict[str, Any]) -> EvaluationDataset:
    data = dict(body)
    data["created_at"], data["updated_at"] = parse_time(data["created_at"]), parse_time(data["updated_at"])
    return EvaluationDataset(**data)


def run_of(body: dict[str, Any]) -> EvaluationRun:
    data = dict(body)
    data.setdefault("owner", None)
    for key in ("created_at", "updated_at", "completed_at"):
        data[key] = parse_time(data[key])
    return EvaluationRun(**data)
