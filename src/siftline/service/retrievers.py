"""Retrievers: named pipelines over collections, validated into a plan when created."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from siftline.errors import NotFoundError, ValidationError
from siftline.ids import new_id
from siftline.models import Collection, Namespace, Retriever, utcnow
from siftline.pipeline.plan import Plan, build_plan, stored_plan
from siftline.service.cache import validate_cache_config
from siftline.storage.base import Storage

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
INPUT_TYPES = (
    "string", "text", "number", "integer", "float", "boolean", "object", "array", "date", "datetime",
    "image", "audio", "video", "pdf", "excel", "document_reference",
)  # fmt: skip
PATCHABLE = ("retriever_name", "description", "tags", "metadata", "budget_limits", "cache_config")


def _name(value: Any, loc: list[str | int]) -> str:
    if not isinstance(value, str) or not _NAME.match(value) or value.startswith("ret_"):
        raise ValidationError.at(
            loc, "a retriever name has 1-100 letters, digits, '_', '-' or '.' and does not start with 'ret_'"
        )
    return value


def resolve_collections(storage: Storage, namespace: Namespace, identifiers: Any) -> list[Collection]:
    if identifiers is None:
        return []
    if not isinstance(identifiers, list) or not all(isinstance(i, str) for i in identifiers):
        raise ValidationError.at(["body", "collection_identifiers"], "a list of collection names or ids")
    out = []
    for i, ident in enumerate(identifiers):
        col = storage.get_collection(namespace.namespace_id, ident)
        if col is None:
            raise ValidationError.at(
                ["body", "collection_identifiers", i], f"collection '{ident}' not found in this namespace"
            )
        if col not in out:
            out.append(col)
    return out


def validate_input_schema(schema: Any) -> dict[str, dict[str, Any]]:
    if schema is None:
        return {}
    if not isinstance(schema, dict):
        raise ValidationError.at(
            ["body", "input_schema"], "input_schema maps input names to {type, required, …}"
        )
    for name, spec in schema.items():
        loc: list[str | int] = ["body", "input_schema", name]
        if not isinstance(spec, dict):
            raise ValidationError.at(loc, "an input is described by an object: {type, required, default, …}")
        if spec.get("type", "string") not in INPUT_TYPES:
            raise ValidationError.at([*loc, "type"], f"type is one of {', '.join(INPUT_TYPES)}")
        if "enum" in spec and spec["enum"] is not None and not isinstance(spec["enum"], list):
            raise ValidationError.at([*loc, "enum"], "enum is a list of allowed values")
    return {name: {"type": "string", **spec} for name, spec in schema.items()}


BUDGET_CEILINGS = {"max_credits": 1_000_000_000_000, "max_time_ms": 86_400_000}  # a day at most


def validate_budget(budget: Any, loc: list[str | int]) -> dict[str, Any]:
    if budget is None:
        return {}
    if not isinstance(budget, dict) or set(budget) - {"max_credits", "max_time_ms"}:
        raise ValidationError.at(loc, "budget_limits is {max_credits, max_time_ms}")
    for key, ceiling in BUDGET_CEILINGS.items():
        value = budget.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= ceiling
        ):  # also refuses NaN and ±Infinity
            raise ValidationError.at([*loc, key], f"{key} is a number from 0 to {ceiling:,}")
    return {k: v for k, v in budget.items() if v is not None}


def plan_of(retriever: Retriever) -> Plan:
    return stored_plan(retriever.stages)


def create(storage: Storage, namespace: Namespace, body: dict[str, Any]) -> Retriever:
    name = _name(body.get("retriever_name"), ["body", "retriever_name"])
    collections = resolve_collections(storage, namespace, body.get("collection_identifiers"))
    schema = validate_input_schema(body.get("input_schema"))
    plan = build_plan(body.get("stages"), collections, schema)
    now = utcnow()
    retriever = Retriever(
        retriever_id=new_id("ret"),
        namespace_id=namespace.namespace_id,
        retriever_name=name,
        description=body.get("description"),
        collection_ids=tuple(c.collection_id for c in collections),
        stages=tuple(plan.configs()),
        input_schema=schema,
        budget_limits=validate_budget(body.get("budget_limits"), ["body", "budget_limits"]),
        cache_config=validate_cache_config(
            body.get("cache_config"), ["body", "cache_config"], [s.name for s in plan.stages]
        ),
        tags=tuple(body.get("tags") or ()),
        metadata=dict(body.get("metadata") or {}),
        created_at=now,
        updated_at=now,
    )
    storage.create_retriever(retriever)
    return retriever


def get(storage: Storage, namespace: Namespace, identifier: str) -> Retriever:
    retriever = storage.get_retriever(namespace.namespace_id, identifier)
    if retriever is None:
        raise NotFoundError(
            f"Retriever '{identifier}' not found in namespace '{namespace.namespace_name}'; "
            "list retrievers with POST /v1/retrievers/list."
        )
    return retriever


def patch(storage: Storage, retriever: Retriever, changes: dict[str, Any]) -> Retriever:
    fixed = sorted(set(changes) - set(PATCHABLE))
    if fixed:
        raise ValidationError.at(
            ["body", fixed[0]],
            f"'{fixed[0]}' cannot be changed in place; PATCH changes {', '.join(PATCHABLE)}. "
            "Change stages, collections or inputs with POST /v1/retrievers/{retriever_id}/clone.",
        )
    fields: dict[str, Any] = {}
    if "retriever_name" in changes:
        fields["retriever_name"] = _name(changes["retriever_name"], ["body", "retriever_name"])
    if "description" in changes:
        fields["description"] = changes["description"]
    if "tags" in changes:
        fields["tags"] = tuple(changes["tags"] or ())
    if "metadata" in changes:
        fields["metadata"] = dict(changes["metadata"] or {})
    if "budget_limits" in changes:
        fields["budget_limits"] = validate_budget(changes["budget_limits"], ["body", "budget_limits"])
    if "cache_config" in changes:
        names = [s.name for s in plan_of(retriever).stages]
        fields["cache_config"] = validate_cache_config(
            changes["cache_config"], ["body", "cache_config"], names
        )
    updated = replace(retriever, **fields, updated_at=utcnow(), version=retriever.version + 1)
    storage.update_retriever(updated)
    return updated


def clone(storage: Storage, namespace: Namespace, source: Retriever, body: dict[str, Any]) -> Retriever:
    """A new retriever from ``source`` with the body's overrides (stages, collections, inputs, …)."""
    merged: dict[str, Any] = {
        "retriever_name": body.get("retriever_name") or f"{source.retriever_name}-copy",
        "description": body.get("description", source.description),
        "collection_identifiers": body.get("collection_identifiers", list(source.collection_ids)),
        "stages": body.get("stages", list(source.stages)),
        "input_schema": body.get("input_schema", source.input_schema),
        "budget_limits": body.get("budget_limits", source.budget_limits),
        "cache_config": body.get("cache_config", source.cache_config),
        "tags": body.get("tags", list(source.tags)),
        "metadata": body.get("metadata", source.metadata),
    }
    return create(storage, namespace, merged)


def delete(storage: Storage, retriever: Retriever) -> None:
    storage.delete_retriever(retriever.namespace_id, retriever.retriever_id)
