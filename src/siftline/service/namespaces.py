"""Namespaces: every resource lives in exactly one; other namespaces' resources are not found."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from siftline.errors import BadRequestError, NotFoundError, ValidationError
from siftline.ids import new_id
from siftline.models import ApiKey, Namespace, utcnow
from siftline.service.keys import check_namespace_access
from siftline.storage.base import Storage

DEFAULT_NAMESPACE = "default"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$")


def validate_name(name: str, loc: list[str | int]) -> str:
    if not _NAME.match(name) or name.startswith("ns_"):
        raise ValidationError.at(
            loc,
            "a namespace name has 3-64 letters, digits, '_', '-' or '.', starts with a letter or digit, "
            "and does not start with 'ns_'",
        )
    return name


def ensure_namespace(storage: Storage, name: str) -> Namespace:
    """The namespace called ``name``, created when missing (used for ``default`` and by the CLI)."""
    found = storage.get_namespace(name)
    if found is not None:
        return found
    now = utcnow()
    namespace = Namespace(new_id("ns"), name, None, {}, now, now)
    storage.create_namespace(namespace)
    return namespace


def create(
    storage: Storage, name: str, description: str | None, metadata: dict[str, Any] | None
) -> Namespace:
    validate_name(name, ["body", "namespace_name"])
    now = utcnow()
    namespace = Namespace(new_id("ns"), name, description, metadata or {}, now, now)
    storage.create_namespace(namespace)
    return namespace


def get(storage: Storage, key: ApiKey, id_or_name: str) -> Namespace:
    namespace = storage.get_namespace(id_or_name)
    check_namespace_access(key, namespace, id_or_name)
    if namespace is None:
        raise NotFoundError(
            f"Namespace '{id_or_name}' not found; list namespaces with POST /v1/namespaces/list "
            "or create it with POST /v1/namespaces."
        )
    return namespace


def update(storage: Storage, namespace: Namespace, changes: dict[str, Any]) -> Namespace:
    if "namespace_name" in changes and changes["namespace_name"] is not None:
        validate_name(changes["namespace_name"], ["body", "namespace_name"])
        if namespace.namespace_name == DEFAULT_NAMESPACE and changes["namespace_name"] != DEFAULT_NAMESPACE:
            raise BadRequestError(
                "The 'default' namespace is where requests without X-Namespace go and cannot be renamed; "
                "create a namespace with the name you want instead."
            )
    fields = {k: v for k, v in changes.items() if k in {"namespace_name", "description", "metadata"}}
    if fields.get("namespace_name") is None:
        fields.pop("namespace_name", None)
    if "metadata" in fields and fields["metadata"] is None:  # null clears it (found by the fuzz suite)
        fields["metadata"] = {}
    updated = replace(namespace, **fields, updated_at=utcnow())
    storage.update_namespace(updated)
    return updated


def delete(storage: Storage, namespace: Namespace) -> None:
    if namespace.namespace_name == DEFAULT_NAMESPACE:
        raise BadRequestError(
            "The 'default' namespace is where requests without X-Namespace go and cannot be deleted; "
            "delete its collections instead."
        )
    storage.delete_namespace(namespace.namespace_id)
