"""API keys: created once, stored only as a SHA-256 hash, checked on every request."""

from __future__ import annotations

import hashlib
import secrets
import string

from siftline.errors import ForbiddenError, NotFoundError, UnauthorizedError, ValidationError
from siftline.ids import new_id
from siftline.models import ApiKey, Namespace, utcnow
from siftline.storage.base import Storage

_ALPHABET = string.ascii_letters + string.digits


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_secret(live: bool = True) -> str:
    return ("sk_live_" if live else "sk_test_") + "".join(secrets.choice(_ALPHABET) for _ in range(40))


def create_key(
    storage: Storage, name: str, namespace_ids: list[str] | None, secret: str | None = None
) -> tuple[ApiKey, str]:
    """Store a new key (or the given ``secret``); returns the record and the secret, shown once."""
    secret = secret or generate_secret()
    if not secret.startswith("sk_") or len(secret) < 20:
        raise ValidationError.at(["key"], "an API key starts with sk_ and has at least 20 characters")
    key = ApiKey(
        key_id=new_id("key"),
        name=name,
        prefix=secret[:12],
        namespaces=tuple(namespace_ids) if namespace_ids is not None else None,
        created_at=utcnow(),
    )
    storage.create_key(key, hash_key(secret))
    return key, secret


def authenticate(storage: Storage, authorization: str | None) -> ApiKey:
    """The key behind an ``Authorization: Bearer sk_…`` header, or 401."""
    if not authorization:
        raise UnauthorizedError(
            "Missing API key: send the header 'Authorization: Bearer <key>' (create a key with `siftline keys create`)."
        )
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise UnauthorizedError("Malformed Authorization header: expected 'Authorization: Bearer <key>'.")
    key = storage.key_by_hash(hash_key(token))
    if key is None:
        raise UnauthorizedError("Invalid API key: check the key, or create one with `siftline keys create`.")
    if key.revoked_at is not None:
        raise UnauthorizedError("This API key was revoked; create a new one with `siftline keys create`.")
    return key


def check_namespace_access(key: ApiKey, namespace: Namespace | None, requested: str) -> None:
    """403 when a namespace-limited key asks for a namespace outside its list (existing or not)."""
    if key.namespaces is None:
        return
    if namespace is None or namespace.namespace_id not in key.namespaces:
        raise ForbiddenError(
            f"This API key may not use namespace '{requested}'; it is limited to its own namespaces."
        )


def require_unlimited(key: ApiKey, action: str) -> None:
    if key.namespaces is not None:
        raise ForbiddenError(f"Only a key without namespace limits may {action}.")


def revoke_key(storage: Storage, key_id_or_prefix: str) -> ApiKey:
    key = storage.revoke_key(key_id_or_prefix)
    if key is None:
        raise NotFoundError(
            f"No single API key matches '{key_id_or_prefix}'; use the key_id shown by `keys list`."
        )
    return key
