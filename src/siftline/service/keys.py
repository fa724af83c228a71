"""API keys: created once, stored only as a SHA-256 hash, checked on every request."""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from datetime import UTC, datetime, timedelta

from siftline.errors import ForbiddenError, NotFoundError, UnauthorizedError, ValidationError
from siftline.ids import new_id
from siftline.models import ApiKey, Namespace, Rate, utcnow
from siftline.storage.base import Storage

_ALPHABET = string.ascii_letters + string.digits


def when(ts: datetime) -> str:
    """A time as people read it in messages: ``2027-01-31T00:00:00Z``."""
    return ts.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_hash(authorization: str | None) -> str | None:
    """The hash of the key an ``Authorization: Bearer …`` header carries (as stored), or None."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return hash_key(token) if scheme.lower() == "bearer" and token else None


def generate_secret(live: bool = True) -> str:
    return ("sk_live_" if live else "sk_test_") + "".join(secrets.choice(_ALPHABET) for _ in range(40))


def create_key(
    storage: Storage,
    name: str,
    namespace_ids: list[str] | None,
    secret: str | None = None,
    *,
    expires_at: datetime | None = None,
    rate: Rate | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key (or the given ``secret``); returns the record and the secret, shown once.
    ``expires_at``: when it stops working (None: never); ``rate``: its own rate limit (None: the server's
    default; ``UNLIMITED``: none)."""
    secret = secret or generate_secret()
    if not secret.startswith("sk_") or len(secret) < 20:
        raise ValidationError.at(["key"], "an API key starts with sk_ and has at least 20 characters")
    now = utcnow()
    if expires_at is not None and expires_at <= now:
        raise ValidationError.at(["expires"], f"the expiry {when(expires_at)} is not in the future")
    key = ApiKey(
        key_id=new_id("key"),
        name=name,
        prefix=secret[:12],
        namespaces=tuple(namespace_ids) if namespace_ids is not None else None,
        created_at=now,
        expires_at=expires_at,
        rate=rate,
    )
    storage.create_key(key, hash_key(secret))
    return key, secret


_DURATION = re.compile(r"(\d+)\s*([smhdw])", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_expiry(text: str, now: datetime | None = None) -> datetime:
    """When a key expires, from a time (``2027-01-31T00:00:00Z``, ``2027-01-31``; UTC unless it says
    otherwise) or a duration from now (``30d``, ``12h``, ``90m``, ``2w``). ValidationError when it is
    neither or not in the future."""
    now = now or utcnow()
    text = text.strip()
    duration = _DURATION.fullmatch(text)
    if duration is not None:
        expires = now + timedelta(seconds=int(duration.group(1)) * _UNIT_SECONDS[duration.group(2).lower()])
    else:
        try:
            expires = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValidationError.at(
                ["expires"],
                f"'{text}' is neither a time (2027-01-31T00:00:00Z) nor a duration (30d, 12h, 90m, 2w)",
            ) from None
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
    if expires <= now:
        raise ValidationError.at(["expires"], f"'{text}' ({when(expires)}) is not in the future")
    return expires


def authenticate(storage: Storage, authorization: str | None, key_hash: str | None = None) -> ApiKey:
    """The key behind an ``Authorization: Bearer sk_…`` header, or 401; ``key_hash``: the header's
    ``token_hash`` when the caller already has it."""
    if not authorization:
        raise UnauthorizedError(
            "Missing API key: send the header 'Authorization: Bearer <key>' (create a key with `siftline keys create`)."
        )
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise UnauthorizedError("Malformed Authorization header: expected 'Authorization: Bearer <key>'.")
    key = storage.key_by_hash(key_hash or hash_key(token))
    if key is None:
        raise UnauthorizedError("Invalid API key: check the key, or create one with `siftline keys create`.")
    if key.revoked_at is not None:
        raise UnauthorizedError("This API key was revoked; create a new one with `siftline keys create`.")
    if key.expires_at is not None and key.expired(utcnow()):
        raise UnauthorizedError(
            f"This API key expired at {when(key.expires_at)}; create a new one with `siftline keys create`.",
            {"key_id": key.key_id, "expired_at": when(key.expires_at)},
        )
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
