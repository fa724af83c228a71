"""Inspector sessions (service/sessions.py): a signed value that carries a key, a namespace and an expiry,
checked against the key's stored hash; CSRF tokens bound to one sign-in."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from siftline.config import Settings
from siftline.errors import ForbiddenError, NotFoundError, UnauthorizedError
from siftline.service import keys, namespaces, sessions
from siftline.storage.base import Storage
from siftline.storage.factory import open_storage


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    store = open_storage(Settings(data_dir=tmp_path / "data"))
    namespaces.ensure_namespace(store, "default")
    yield store
    store.close()


def test_a_session_opens_with_the_key_and_namespace_it_was_signed_for(storage: Storage) -> None:
    ns = namespaces.ensure_namespace(storage, "team-a")
    key, secret = keys.create_key(storage, "alice", [ns.namespace_id])
    session = sessions.sign_in(storage, secret, "team-a", hours=1)
    assert secret not in session.value and keys.hash_key(secret) not in session.value
    opened = sessions.open_session(storage, session.value)
    assert (opened.key.key_id, opened.namespace.namespace_id) == (key.key_id, ns.namespace_id)
    assert opened.csrf_token == session.csrf_token and opened.expires == session.expires


def test_two_sign_ins_never_share_a_value_or_a_csrf_token(storage: Storage) -> None:
    _, secret = keys.create_key(storage, "k", None)
    a, b = (sessions.sign_in(storage, secret, "default", hours=1) for _ in range(2))
    assert a.value != b.value and a.csrf_token != b.csrf_token


@pytest.mark.parametrize("value", [None, "", "garbage", "v1.a.b.c.d", "v2.key_x.ns_x.99999999999.n.mac"])
def test_a_missing_or_malformed_value_is_no_session(storage: Storage, value: str | None) -> None:
    with pytest.raises(UnauthorizedError):
        sessions.open_session(storage, value)


def test_any_change_to_the_value_breaks_its_signature(storage: Storage) -> None:
    _, secret = keys.create_key(storage, "k", None)
    other = namespaces.ensure_namespace(storage, "other")
    value = sessions.sign_in(storage, secret, "default", hours=1).value
    parts = value.split(".")
    forged = [
        ".".join([*parts[:2], other.namespace_id, *parts[3:]]),  # another namespace
        ".".join([*parts[:3], str(int(parts[3]) + 3600), *parts[4:]]),  # a later expiry
        ".".join([*parts[:5], "0" * 64]),  # a made-up MAC
        value + "x",
    ]
    for bad in forged:
        with pytest.raises(UnauthorizedError):
            sessions.open_session(storage, bad)


def test_a_session_signed_for_one_key_does_not_open_as_another(storage: Storage) -> None:
    _, secret_a = keys.create_key(storage, "a", None)
    key_b, _ = keys.create_key(storage, "b", None)
    parts = sessions.sign_in(storage, secret_a, "default", hours=1).value.split(".")
    with pytest.raises(UnauthorizedError):
        sessions.open_session(storage, ".".join([parts[0], key_b.key_id, *parts[2:]]))


def test_a_session_expires(storage: Storage) -> None:
    _, secret = keys.create_key(storage, "k", None)
    session = sessions.sign_in(storage, secret, "default", hours=1, now=time.time() - 7200)
    with pytest.raises(UnauthorizedError, match="expired"):
        sessions.open_session(storage, session.value)
    assert sessions.open_session(storage, session.value, now=session.expires - 1).key.name == "k"


def test_revoking_the_key_ends_its_sessions(storage: Storage) -> None:
    key, secret = keys.create_key(storage, "k", None)
    session = sessions.sign_in(storage, secret, "default", hours=1)
    keys.revoke_key(storage, key.key_id)
    with pytest.raises(UnauthorizedError, match="revoked"):
        sessions.open_session(storage, session.value)
    with pytest.raises(UnauthorizedError):
        sessions.sign_in(storage, secret, "default", hours=1)


def test_a_namespace_deleted_after_sign_in_ends_the_session(storage: Storage) -> None:
    ns = namespaces.ensure_namespace(storage, "brief")
    _, secret = keys.create_key(storage, "k", None)
    session = sessions.sign_in(storage, secret, "brief", hours=1)
    storage.delete_namespace(ns.namespace_id)
    with pytest.raises(UnauthorizedError):
        sessions.open_session(storage, session.value)


def test_a_limited_key_signs_in_only_to_its_namespaces_and_switches_among_them(storage: Storage) -> None:
    a, b = namespaces.ensure_namespace(storage, "ns-a"), namespaces.ensure_namespace(storage, "ns-b")
    namespaces.ensure_namespace(storage, "ns-c")
    key, secret = keys.create_key(storage, "ab", [a.namespace_id, b.namespace_id])
    with pytest.raises(ForbiddenError):
        sessions.sign_in(storage, secret, "ns-c", hours=1)
    with pytest.raises(UnauthorizedError):
        sessions.sign_in(storage, "sk_live_not_a_key_at_all_0000000", "ns-a", hours=1)
    assert sessions.sign_in(storage, secret, "", hours=1).namespace.namespace_name == "ns-a"  # its first
    with pytest.raises(UnauthorizedError, match="Enter an API key"):
        sessions.sign_in(storage, "  ", "ns-a", hours=1)
    session = sessions.sign_in(storage, secret, "ns-a", hours=1)
    assert [n.namespace_name for n in sessions.usable_namespaces(storage, key)] == ["ns-a", "ns-b"]
    switched = sessions.switch_namespace(storage, session, "ns-b")
    assert switched.namespace.namespace_id == b.namespace_id and switched.expires == session.expires
    assert sessions.open_session(storage, switched.value).namespace.namespace_name == "ns-b"
    with pytest.raises(ForbiddenError):
        sessions.switch_namespace(storage, session, "ns-c")
    unlimited, _ = keys.create_key(storage, "all", None)
    assert len(sessions.usable_namespaces(storage, unlimited)) == 4  # default too


def test_an_unlimited_key_signing_in_to_a_missing_namespace_is_told_so(storage: Storage) -> None:
    _, secret = keys.create_key(storage, "k", None)
    with pytest.raises(NotFoundError):
        sessions.sign_in(storage, secret, "nowhere", hours=1)
    assert sessions.sign_in(storage, secret, "", hours=1).namespace.namespace_name == "default"


def test_the_csrf_check_takes_only_this_sessions_token(storage: Storage) -> None:
    _, secret = keys.create_key(storage, "k", None)
    a, b = (sessions.sign_in(storage, secret, "default", hours=1) for _ in range(2))
    sessions.check_csrf(a, a.csrf_token)
    for wrong in (None, "", b.csrf_token, a.csrf_token[:-1], "é" * 10):
        with pytest.raises(ForbiddenError):
            sessions.check_csrf(a, wrong)
