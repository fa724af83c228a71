"""A database made before keys had an expiry and a rate limit opens with its keys intact: they never expire
and take the server's default limit; new keys store both."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from siftline.models import Rate
from siftline.storage.sqlite.backend import SQLiteStorage
from siftline.testing.contract import new_key

NEW_COLUMNS = {"expires_at", "rate_per_second", "rate_burst"}


def columns(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[1] for r in conn.execute("PRAGMA table_info(api_keys)")}
    finally:
        conn.close()


def test_an_old_database_gains_the_key_columns_and_keeps_its_keys(tmp_path: Path) -> None:
    path, vectors = tmp_path / "siftline.db", tmp_path / "vectors"
    storage = SQLiteStorage(path, vectors)
    (old, old_hash), (revoked, revoked_hash) = new_key("old", ("ns_a",)), new_key("gone")
    storage.create_key(old, old_hash)
    storage.create_key(revoked, revoked_hash)
    revoked = storage.revoke_key(revoked.key_id)  # type: ignore[assignment]
    storage.close()
    conn = sqlite3.connect(path, isolation_level=None)
    for column in sorted(NEW_COLUMNS):  # back to the table as it was before this change
        conn.execute(f"ALTER TABLE api_keys DROP COLUMN {column}")
    conn.close()
    assert not columns(path) & NEW_COLUMNS

    storage = SQLiteStorage(path, vectors)
    try:
        assert columns(path) >= NEW_COLUMNS
        assert storage.key_by_hash(old_hash) == old and old.expires_at is None and old.rate is None
        assert storage.key_by_hash(revoked_hash) == revoked
        new, new_hash = new_key("new")
        new = replace(new, expires_at=datetime(2027, 1, 31, tzinfo=UTC), rate=Rate(5.0, 5))
        storage.create_key(new, new_hash)
        assert storage.key_by_hash(new_hash) == new
    finally:
        storage.close()
    storage = SQLiteStorage(path, vectors)  # opening again changes nothing
    try:
        assert {k.key_id for k in storage.list_keys()} == {old.key_id, revoked.key_id, new.key_id}
        assert storage.key_by_hash(new_hash) == new
    finally:
        storage.close()
