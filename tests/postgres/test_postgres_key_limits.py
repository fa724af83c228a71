"""Migration 7 (key expiry and rate limits) on a database made before it: its keys are kept, never
expiring and under the server's default limit; new keys store both."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import psycopg

from siftline.models import UNLIMITED, Rate
from siftline.storage.postgres.backend import PostgresStorage
from siftline.testing.contract import new_key


def test_a_database_of_migration_6_gains_the_key_columns_and_keeps_its_keys(database: str) -> None:
    storage = PostgresStorage(database, pool_size=2)
    (old, old_hash), (revoked, revoked_hash) = new_key("old", ("ns_a",)), new_key("gone")
    storage.create_key(old, old_hash)
    storage.create_key(revoked, revoked_hash)
    revoked = storage.revoke_key(revoked.key_id)  # type: ignore[assignment]
    storage.close()
    with psycopg.connect(database, autocommit=True) as conn:  # back to the schema of migrations 1 to 6
        conn.execute(
            "ALTER TABLE api_keys DROP COLUMN expires_at, DROP COLUMN rate_per_second, DROP COLUMN rate_burst"
        )
        conn.execute("DELETE FROM siftline_migrations WHERE version = 7")

    storage = PostgresStorage(database, pool_size=2)
    try:
        assert 7 in storage.db.applied()
        assert storage.key_by_hash(old_hash) == old and old.expires_at is None and old.rate is None
        assert storage.key_by_hash(revoked_hash) == revoked
        new, new_hash = new_key("new")
        new = replace(new, expires_at=datetime(2027, 1, 31, tzinfo=UTC), rate=Rate(5.0, 5))
        exempt, exempt_hash = new_key("exempt")
        exempt = replace(exempt, rate=UNLIMITED)
        storage.create_key(new, new_hash)
        storage.create_key(exempt, exempt_hash)
        assert storage.key_by_hash(new_hash) == new
        assert storage.key_by_hash(exempt_hash) == exempt
        assert {k.key_id for k in storage.list_keys()} == {
            old.key_id,
            revoked.key_id,
            new.key_id,
            exempt.key_id,
        }
    finally:
        storage.close()
