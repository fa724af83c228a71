"""Interactions: what users did with an execution's results (clicks, views, purchases …).

Each one names an execution of the caller's namespace (else 404), a document that execution returned
and its position there (else 422): the position is the 0-based index in the page the execution
returned, or the document's rank in the whole result (page offset + index). The retriever is taken
from the execution (a different ``retriever_id`` is a 422). An identical interaction — same execution,
document, types, position, user and session — recorded in the last five minutes is dropped, so a
client may retry safely (``deduplicated: true``). The wire shapes are the SDK's ``SearchInteraction``
and ``InteractionResponse``; ``document_id`` is accepted for ``feature_id``.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta
from typing import Any

from siftline.errors import NotFoundError, ValidationError
from siftline.ids import new_id
from siftline.models import (
    INTERACTION_TYPES,
    ExecutionRecord,
    Interaction,
    InteractionQuery,
    Namespace,
    iso,
    utcnow,
)
from siftline.service import learned
from siftline.service.records import canonical_json
from siftline.storage.base import Storage

DEDUPE_WINDOW = timedelta(minutes=5)
MAX_BATCH = 1000
MAX_POSITION = 1_000_000
FIELDS = (
    "feature_id", "document_id", "interaction_type", "position", "metadata", "user_id", "session_id",
    "execution_id", "retriever_id", "query_snapshot", "document_score", "result_set_size", "feature_uri",
    "occurred_at",
)  # fmt: skip
Loc = list[str | int]


def _text(raw: dict[str, Any], key: str, loc: Loc, required: bool = False) -> str | None:
    value = raw.get(key)
    if value is None:
        if required:
            raise ValidationError.at([*loc, key], f"{key} is required")
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 512:
        raise ValidationError.at([*loc, key], f"{key} is a non-empty string of at most 512 characters")
    return value


def _types(raw: Any, loc: Loc) -> tuple[str, ...]:
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or not values:
        raise ValidationError.at(
            loc, "interaction_type is a non-empty list of interaction types, e.g. ['click']"
        )
    for i, value in enumerate(values):
        if value not in INTERACTION_TYPES:
            raise ValidationError.at(
                [*loc, i], f"unknown interaction type {value!r}; known: {', '.join(INTERACTION_TYPES)}"
            )
    return tuple(dict.fromkeys(values))


def _int(raw: dict[str, Any], key: str, loc: Loc, required: bool = False) -> int | None:
    value = raw.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_POSITION:
        raise ValidationError.at([*loc, key], f"{key} is an integer from 0 to {MAX_POSITION}")
    return value


def _occurred(raw: Any, now: datetime, loc: Loc) -> datetime:
    if raw is None:
        return now
    try:
        when = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError.at(loc, "occurred_at is an ISO 8601 time, e.g. 2026-01-31T12:00:00Z") from None
    if when.tzinfo is None:
        raise ValidationError.at(loc, "occurred_at needs a time zone (e.g. a trailing Z)")
    if when > now + timedelta(minutes=5):
        raise ValidationError.at(loc, "occurred_at is in the future; omit it for live interactions")
    return when


def _object(raw: dict[str, Any], key: str, loc: Loc) -> dict[str, Any] | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, dict):
        raise ValidationError.at([*loc, key], f"{key} is an object")
    return value


def parse(raw: Any, loc: Loc) -> dict[str, Any]:
    """The interaction's fields, checked for shape (the execution is checked by :func:`resolve`)."""
    if not isinstance(raw, dict):
        raise ValidationError.at(
            loc, "an interaction is an object: {feature_id, interaction_type, position, execution_id, …}"
        )
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise ValidationError.at(
            [*loc, unknown[0]], f"unknown field '{unknown[0]}'; the fields are: {', '.join(FIELDS)}"
        )
    feature = _text(raw, "feature_id", loc)
    alias = _text(raw, "document_id", loc)
    if feature is not None and alias is not None and feature != alias:
        raise ValidationError.at(
            [*loc, "document_id"], "document_id is an alias of feature_id: give one, or the same"
        )
    feature = feature or alias
    if feature is None:
        raise ValidationError.at(
            [*loc, "feature_id"], "feature_id (or document_id) is required: the document's id"
        )
    score = raw.get("document_score")
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score)
    ):
        raise ValidationError.at([*loc, "document_score"], "document_score is a finite number")
    types = _types(raw.get("interaction_type"), [*loc, "interaction_type"])
    size = _int(raw, "result_set_size", loc)
    if size == 0 and "zero_results" not in types:
        raise ValidationError.at(
            [*loc, "result_set_size"], "result_set_size 0 is only for a zero_results interaction"
        )
    return {
        "feature_id": feature,
        "interaction_types": types,
        "position": _int(raw, "position", loc, required=True),
        "execution_id": _text(raw, "execution_id", loc, required=True),
        "retriever_id": _text(raw, "retriever_id", loc),
        "user_id": _text(raw, "user_id", loc),
        "session_id": _text(raw, "session_id", loc),
        "feature_uri": _text(raw, "feature_uri", loc),
        "document_score": float(score) if score is not None else None,
        "result_set_size": size,
        "metadata": _object(raw, "metadata", loc) or {},
        "query_snapshot": _object(raw, "query_snapshot", loc),
        "occurred_at": raw.get("occurred_at"),
    }


def _execution(storage: Storage, namespace: Namespace, execution_id: str) -> ExecutionRecord:
    record = storage.get_execution(namespace.namespace_id, execution_id)
    if record is None:
        raise NotFoundError(
            f"Execution '{execution_id}' not found in namespace '{namespace.namespace_name}'; an interaction "
            "names the execution_id an execute response returned."
        )
    return record


def _check_position(record: ExecutionRecord, fields: dict[str, Any], loc: Loc) -> str | None:
    """422 unless the execution returned the document at that position; a warning when it can't be told."""
    if record.documents is None:
        return "the execution's documents were not retained, so the document and position were not checked"
    if "zero_results" in fields["interaction_types"] and not record.documents:
        return None
    start = int(((record.detail.get("pagination") or {}).get("offset")) or 0)
    ids = [d.get("document_id") for d in record.documents]
    position, feature = fields["position"], fields["feature_id"]
    if feature not in ids:
        raise ValidationError.at(
            [*loc, "feature_id"], f"execution '{record.execution_id}' did not return document '{feature}'"
        )
    if (position < len(ids) and ids[position] == feature) or (
        start <= position < start + len(ids) and ids[position - start] == feature
    ):
        return None
    where = ids.index(feature)
    raise ValidationError.at(
        [*loc, "position"],
        f"document '{feature}' was at position {where} of the page (rank {start + where}), not {position}",
    )


def resolve(
    storage: Storage, namespace: Namespace, fields: dict[str, Any], now: datetime, loc: Loc
) -> tuple[Interaction, str | None, ExecutionRecord]:
    """The interaction to store (the execution checked), a warning if any, and the execution."""
    record = _execution(storage, namespace, fields["execution_id"])
    given = fields["retriever_id"]
    if given is not None and record.retriever_id is not None and given != record.retriever_id:
        raise ValidationError.at(
            [*loc, "retriever_id"],
            f"execution '{record.execution_id}' ran retriever '{record.retriever_id}', not '{given}'",
        )
    if given is not None and record.retriever_id is None:
        raise ValidationError.at([*loc, "retriever_id"], f"execution '{record.execution_id}' was ad hoc")
    warning = _check_position(record, fields, loc)
    key = canonical_json(
        [record.execution_id, fields["feature_id"], sorted(fields["interaction_types"]), fields["position"],
         fields["user_id"], fields["session_id"]]
    )  # fmt: skip
    interaction = Interaction(
        interaction_id=new_id("int"),
        namespace_id=namespace.namespace_id,
        execution_id=record.execution_id,
        retriever_id=record.retriever_id,
        feature_id=fields["feature_id"],
        interaction_types=fields["interaction_types"],
        position=fields["position"],
        recorded_at=now,
        occurred_at=_occurred(fields["occurred_at"], now, [*loc, "occurred_at"]),
        user_id=fields["user_id"],
        session_id=fields["session_id"],
        feature_uri=fields["feature_uri"],
        document_score=fields["document_score"],
        result_set_size=fields["result_set_size"],
        metadata=fields["metadata"],
        query_snapshot=fields["query_snapshot"],
        dedupe_key=hashlib.sha1(key.encode()).hexdigest(),
    )
    return interaction, warning, record


def as_response(interaction: Interaction, stored: bool = True, warning: str | None = None) -> dict[str, Any]:
    """The SDK's ``InteractionResponse``."""
    out: dict[str, Any] = {
        "feature_id": interaction.feature_id,
        "interaction_type": list(interaction.interaction_types),
        "position": interaction.position,
        "metadata": interaction.metadata,
        "user_id": interaction.user_id,
        "session_id": interaction.session_id,
        "execution_id": interaction.execution_id,
        "retriever_id": interaction.retriever_id,
        "query_snapshot": interaction.query_snapshot,
        "document_score": interaction.document_score,
        "result_set_size": interaction.result_set_size,
        "feature_uri": interaction.feature_uri,
        "occurred_at": iso(interaction.occurred_at),
        "interaction_id": interaction.interaction_id if stored else None,
        "deduplicated": not stored,
        "timestamp": iso(interaction.recorded_at),
    }
    if warning:
        out["warning"] = warning
    return out


def record(storage: Storage, namespace: Namespace, raw: Any) -> dict[str, Any]:
    now = utcnow()
    interaction, warning, execution = resolve(storage, namespace, parse(raw, ["body"]), now, ["body"])
    _, stored = storage.add_interactions([interaction], now - DEDUPE_WINDOW)[0]
    if stored:
        learned.learn(storage, execution, interaction)
    return as_response(interaction, stored, warning)


def record_batch(storage: Storage, namespace: Namespace, raw: Any) -> dict[str, Any]:
    """Each item on its own: the valid ones are stored, the others reported by index."""
    items = raw.get("interactions") if isinstance(raw, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        raise ValidationError.at(
            ["body", "interactions"], f"interactions is a list of 1 to {MAX_BATCH} interactions"
        )
    now = utcnow()
    valid: list[tuple[int, Interaction]] = []
    executions: list[ExecutionRecord] = []
    errors: list[str] = []
    for i, item in enumerate(items):
        loc: Loc = ["body", "interactions", i]
        try:
            interaction, _, execution = resolve(storage, namespace, parse(item, loc), now, loc)
        except (ValidationError, NotFoundError) as exc:
            errors.append(f"index {i}: {exc.message}")
            continue
        valid.append((i, interaction))
        executions.append(execution)
    kept = storage.add_interactions([x for _, x in valid], now - DEDUPE_WINDOW) if valid else []
    for (_, interaction), execution, (_, stored) in zip(valid, executions, kept, strict=True):
        if stored:
            learned.learn(storage, execution, interaction)
    results = [
        {
            "index": i,
            "interaction_id": kept_id,
            "status": "created" if stored else "deduplicated",
            "deduplicated": not stored,
        }
        for (i, _), (kept_id, stored) in zip(valid, kept, strict=True)
    ]
    return {
        "created": sum(stored for _, stored in kept),
        "failed": len(errors),
        "errors": errors,
        "results": results,
    }


def get(storage: Storage, namespace: Namespace, interaction_id: str) -> dict[str, Any]:
    found = storage.get_interaction(namespace.namespace_id, interaction_id)
    if found is None:
        raise NotFoundError(
            f"Interaction '{interaction_id}' not found in namespace '{namespace.namespace_name}'."
        )
    return as_response(found)


def delete(storage: Storage, namespace: Namespace, interaction_id: str) -> None:
    if not storage.delete_interaction(namespace.namespace_id, interaction_id):
        raise NotFoundError(
            f"Interaction '{interaction_id}' not found in namespace '{namespace.namespace_name}'."
        )


LIST_FILTERS = ("execution_id", "retriever_id", "session_id", "user_id", "feature_id", "interaction_type")


def query_of(body: dict[str, Any]) -> InteractionQuery:
    """The list filters of a ``ListInteractionsRequest`` body (plus ``since``/``until`` times)."""
    unknown = sorted(
        set(body) - {*LIST_FILTERS, "since", "until", "limit", "offset", "page_size", "include_total"}
    )
    if unknown:
        raise ValidationError.at(
            ["body", unknown[0]],
            f"unknown filter '{unknown[0]}'; filters: {', '.join(LIST_FILTERS)}, since, until",
        )
    values: dict[str, Any] = {}
    for key in LIST_FILTERS:
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise ValidationError.at(["body", key], f"{key} is a string")
        values[key] = value
    if values["interaction_type"] is not None and values["interaction_type"] not in INTERACTION_TYPES:
        raise ValidationError.at(
            ["body", "interaction_type"], f"unknown interaction type {values['interaction_type']!r}"
        )
    for key in ("since", "until"):
        raw = body.get(key)
        if raw is not None:
            values[key] = _occurred(raw, utcnow() + timedelta(days=36500), ["body", key])
    return InteractionQuery(**values)


def list_page(
    storage: Storage, namespace: Namespace, body: dict[str, Any], limit: int, offset: int
) -> dict[str, Any]:
    found, total = storage.list_interactions(namespace.namespace_id, query_of(body), limit, offset)
    results = [as_response(i) for i in found]
    pagination = {
        "total": total, "limit": limit, "offset": offset, "page_size": limit, "page": offset // limit + 1,
        "total_pages": -(-total // limit), "has_next": offset + len(found) < total, "has_previous": offset > 0,
    }  # fmt: skip
    return {"results": results, "items": results, "pagination": pagination}
