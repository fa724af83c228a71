"""Sign-in sessions of the execution inspector (``/ui``): an API key signs in once, a signed value carries
the session, and a token derived from it guards every state-changing form (CSRF).

The value is ``v1.<key_id>.<namespace_id>.<expires>.<nonce>.<mac>``: who, where, until when (Unix
seconds), a random nonce (so two sign-ins never share a value or a CSRF token), and an HMAC-SHA256 over
the rest. The raw key is never in it. The HMAC secret is derived from the key's stored SHA-256 hash,
which never leaves the server: every server over the same database checks any server's sessions with no
shared secret to configure, and nobody without the key (or the database) can forge one. Each request
reads the key by id (one indexed row): a revoked or expired key ends its sessions at once, and a namespace
the key may no longer use ends a session there. Signing out clears the cookie; a copy of the value taken
before stays valid until it expires (``ui_session_hours``), as with any stateless session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from siftline.errors import ForbiddenError, UnauthorizedError
from siftline.models import ApiKey, Namespace
from siftline.service import keys, namespaces
from siftline.service.limits import RateLimiter
from siftline.storage.base import Storage

VERSION = "v1"
_CONTEXT = b"siftline/ui-session/v1"
_SIGNED_OUT = "Your session has ended; sign in again with an API key."


@dataclass(frozen=True)
class Session:
    key: ApiKey
    namespace: Namespace
    expires: int  # Unix seconds
    nonce: str
    value: str  # the signed value the browser keeps (a cookie)
    csrf_token: str  # goes in every form of this session and is checked on every POST


def _secret(key_hash: str) -> bytes:
    return hmac.new(key_hash.encode(), _CONTEXT, hashlib.sha256).digest()


def _mac(secret: bytes, message: str) -> str:
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison that accepts any text a browser sends."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def _issue(key: ApiKey, key_hash: str, namespace: Namespace, expires: int) -> Session:
    secret = _secret(key_hash)
    nonce = secrets.token_urlsafe(16)  # letters, digits, '-' and '_': never a '.'
    body = ".".join((VERSION, key.key_id, namespace.namespace_id, str(expires), nonce))
    value = f"{body}.{_mac(secret, body)}"
    return Session(key, namespace, expires, nonce, value, _mac(secret, f"csrf.{nonce}"))


def sign_in(
    storage: Storage,
    secret: str,
    namespace: str | None,
    hours: float,
    now: float | None = None,
    limiter: RateLimiter | None = None,
) -> Session:
    """A session for the key ``secret`` in ``namespace`` (name or id; when empty, ``default``, or for a key
    limited to namespaces, the first of them); the key's errors (401: unknown, revoked, expired), a
    namespace it may not use (403) or that does not exist (404) as the API reports them. With a ``limiter``
    the attempt counts against the key's rate limit (429)."""
    if not secret.strip():
        raise UnauthorizedError(
            "Enter an API key (sk_live_… or sk_test_…); create one with `siftline keys create`."
        )
    key = keys.authenticate(storage, f"Bearer {secret.strip()}")
    if limiter is not None:
        limiter.check(key)
    requested = (namespace or "").strip()
    if not requested:
        usable = usable_namespaces(storage, key, 1) if key.namespaces is not None else []
        requested = usable[0].namespace_id if usable else namespaces.DEFAULT_NAMESPACE
    found = namespaces.get(storage, key, requested)
    expires = int((time.time() if now is None else now) + hours * 3600)
    return _issue(key, keys.hash_key(secret.strip()), found, expires)


def open_session(storage: Storage, value: str | None, now: float | None = None) -> Session:
    """The session a signed value carries, or UnauthorizedError when it is missing, malformed, forged,
    expired, of a revoked key, or of a namespace that is gone or no longer allowed to the key."""
    parts = (value or "").split(".")
    if len(parts) != 6 or parts[0] != VERSION or not parts[3].isdigit():
        raise UnauthorizedError(_SIGNED_OUT)
    _, key_id, namespace_id, expires_text, nonce, mac = parts
    expires = int(expires_text)
    if expires <= (time.time() if now is None else now):
        raise UnauthorizedError("Your session has expired; sign in again with an API key.")
    found = storage.key_with_hash(key_id)
    if found is None:
        raise UnauthorizedError(_SIGNED_OUT)
    key, key_hash = found
    secret = _secret(key_hash)
    if not _same(mac, _mac(secret, ".".join(parts[:5]))):
        raise UnauthorizedError(_SIGNED_OUT)
    if key.revoked_at is not None:
        raise UnauthorizedError("The API key of this session was revoked; sign in with another key.")
    if key.expires_at is not None and key.expires_at.timestamp() <= (time.time() if now is None else now):
        raise UnauthorizedError(
            f"The API key of this session expired at {keys.when(key.expires_at)}; sign in with another key."
        )
    namespace = storage.get_namespace(namespace_id)
    if namespace is None or (key.namespaces is not None and namespace_id not in key.namespaces):
        raise UnauthorizedError(_SIGNED_OUT)
    return Session(key, namespace, expires, nonce, value or "", _mac(secret, f"csrf.{nonce}"))


def switch_namespace(storage: Storage, session: Session, requested: str) -> Session:
    """The same sign-in (same expiry) in another namespace the key may use; 403/404 otherwise."""
    namespace = namespaces.get(storage, session.key, requested)
    found = storage.key_with_hash(session.key.key_id)
    if found is None:
        raise UnauthorizedError(_SIGNED_OUT)
    return _issue(session.key, found[1], namespace, session.expires)


def check_csrf(session: Session, token: str | None) -> None:
    """403 unless ``token`` is this session's CSRF token."""
    if not token or not _same(token, session.csrf_token):
        raise ForbiddenError(
            "This form is stale or did not come from this site (CSRF check); reload the page."
        )


def usable_namespaces(storage: Storage, key: ApiKey, limit: int = 200) -> list[Namespace]:
    """The namespaces a key may use (every one for an unlimited key), oldest first."""
    found, _ = storage.list_namespaces(limit, 0, key.namespaces)
    return found
