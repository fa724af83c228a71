"""The PostgreSQL compilation of filters matches exactly what the Python reference evaluator matches.

The documents are stored as the PostgreSQL backend stores them (``jsonvalues``: floats as exact decimals,
a case-folded copy) in a real PostgreSQL 18; filters are drawn by ``siftline.testing.filter_strategies``
(the same drawing the SQLite compiler is checked with). A filter with a regex compiles to a superset,
which ``evaluate`` then narrows: checked too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siftline.filters import evaluate, parse_filter
from siftline.storage.postgres.filter_sql import compile_filter
from siftline.storage.postgres.jsonvalues import exact_json, exact_number, folded
from siftline.testing.filter_strategies import (
    EXAMPLE_DOCS,
    HAND_EXAMPLES,
    Doc,
    as_docs,
    cases,
    single_conditions,
)

SCHEMA = (
    "CREATE TABLE documents(rowid bigint PRIMARY KEY, collection_id text, document_id text, "
    "payload jsonb, internal jsonb, folded jsonb)"
)


@pytest.fixture(scope="module")
def conn(postgres: Any) -> Iterator[psycopg.Connection[Any]]:
    import uuid

    name = f"f_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres.url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = f"postgresql://postgres@/{name}?host={postgres.root}&port={postgres.port}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(SCHEMA)
        yield connection
    with psycopg.connect(postgres.url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _load(conn: psycopg.Connection[Any], docs: list[Doc]) -> list[dict[str, Any]]:
    conn.execute("DELETE FROM documents")
    rows = []
    for i, (collection, user, internal) in enumerate(docs):
        doc_id = f"doc-{i}"
        shadow = {
            "p": folded(user),
            "i": folded(internal),
            "d": doc_id.casefold(),
            "c": collection.casefold(),
        }
        rows.append((i + 1, collection, doc_id, exact_json(user), exact_json(internal), exact_json(shadow)))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO documents VALUES (%s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb)", rows)
    return as_docs(docs)


def _sql_ids(
    conn: psycopg.Connection[Any], flt: Any, full: list[dict[str, Any]], alias: str = "d"
) -> set[str]:
    """What the compiled filter selects, narrowed by evaluate when it is only a superset."""
    node = parse_filter(flt)
    compiled = compile_filter(node, alias)
    table = f"documents {alias}" if alias else "documents"
    found = {
        row[0]
        for row in conn.execute(f"SELECT document_id FROM {table} WHERE {compiled.sql}", compiled.params)
    }
    if compiled.exact:
        return found
    by_id = {d["document_id"]: d for d in full}
    assert found >= {i for i, d in by_id.items() if evaluate(node, d)}, "a superset"
    return {i for i in found if evaluate(node, by_id[i])}


def _py_ids(docs: list[dict[str, Any]], flt: Any) -> set[str]:
    node = parse_filter(flt)
    return {d["document_id"] for d in docs if evaluate(node, d)}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases(), alias=st.sampled_from(["d", ""]))
def test_sql_matches_reference_evaluator(conn: psycopg.Connection[Any], case: Any, alias: str) -> None:
    docs, flts = case
    full = _load(conn, docs)
    for flt in flts:
        assert _sql_ids(conn, flt, full, alias) == _py_ids(full, flt), flt


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=single_conditions())
def test_each_operator_matches_on_every_field(conn: psycopg.Connection[Any], case: Any) -> None:
    docs, field, op, value = case
    full = _load(conn, docs)
    for cs in (False, True):
        flt = {"field": field, "operator": op, "value": value, "case_sensitive": cs}
        assert _sql_ids(conn, flt, full) == _py_ids(full, flt), flt


@pytest.mark.parametrize(("flt", "expected"), HAND_EXAMPLES)
def test_hand_examples(conn: psycopg.Connection[Any], flt: Any, expected: set[int]) -> None:
    full = _load(conn, EXAMPLE_DOCS)
    ids = {f"doc-{i}" for i in expected}
    assert _py_ids(full, flt) == ids
    assert _sql_ids(conn, flt, full) == ids


@pytest.mark.parametrize(
    ("stored", "op", "value", "expected"),
    [
        # an int against a float near it: Python compares exact values, so does numeric on exact decimals
        (123456789012345696.0, "lt", 123456789012345698, True),
        (123456789012345696.0, "eq", 123456789012345696, True),
        (0.1, "gt", 0.1, False),
        (0.1, "eq", 0.1, True),
        (2**53 + 1, "gt", float(2**53), True),
        (1e300, "eq", 1e300, True),
        (5e-324, "gt", 0, True),
        (2.0, "eq", 2, True),
    ],
)
def test_numbers_compare_by_their_exact_values(
    conn: psycopg.Connection[Any], stored: Any, op: str, value: Any, expected: bool
) -> None:
    full = _load(conn, [("news", {"n": stored}, {})])
    flt = {"field": "n", "operator": op, "value": value}
    assert (_py_ids(full, flt) == {"doc-0"}) is expected
    assert _sql_ids(conn, flt, full) == _py_ids(full, flt)


def test_floats_are_written_exactly_and_read_back_unchanged(conn: psycopg.Connection[Any]) -> None:
    values = [0.1, 2.0, -0.5, 1e300, 5e-324, 123456789012345696.0, 1.7976931348623157e308]
    for value in values:
        text = exact_number(value)
        assert "." in text and float(text) == value
    _load(conn, [("news", {"xs": values, "big": 2**70}, {})])
    (payload,) = conn.execute("SELECT payload FROM documents").fetchone()  # type: ignore[misc]
    assert payload["xs"] == values and all(isinstance(x, float) for x in payload["xs"])
    assert payload["big"] == 2**70
