"""The SQLite compilation of filters matches exactly what the Python reference evaluator matches."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siftline.errors import ValidationError
from siftline.filters import evaluate, parse_filter
from siftline.storage.sqlite.filter_sql import (
    compile_filter,
    index_expression,
    index_hint,
    json_path,
    register_functions,
)
from siftline.storage.sqlite.payload_index import holds_many
from siftline.testing.filter_strategies import (
    EXAMPLE_DOCS,
    HAND_EXAMPLES,
    Doc,
    as_docs,
    cases,
    single_conditions,
)

SCHEMA = (
    "CREATE TABLE documents(rowid INTEGER PRIMARY KEY, collection_id TEXT, document_id TEXT, "
    "payload TEXT, internal TEXT)"
)

# ---------------------------------------------------------------------------------------------- strategies
# Documents and filters are drawn by siftline.testing.filter_strategies (STORABLE: values SQLite stores);
# filter values come mostly from the documents' own values at the chosen field, so filters match some rows.


# ---------------------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def conn() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:")
    register_functions(connection)
    connection.execute(SCHEMA)
    yield connection
    connection.close()


def _load(conn: sqlite3.Connection, docs: list[Doc]) -> list[dict[str, Any]]:
    """Store the documents (replacing the table's rows) and return their evaluate() dicts."""
    conn.execute("DELETE FROM documents")
    rows = [
        (i + 1, c, f"doc-{i}", json.dumps(user, ensure_ascii=False), json.dumps(internal, ensure_ascii=False))
        for i, (c, user, internal) in enumerate(docs)
    ]
    conn.executemany("INSERT INTO documents VALUES (?, ?, ?, ?, ?)", rows)
    return as_docs(docs)


def _sql_ids(conn: sqlite3.Connection, flt: Any, alias: str = "d") -> set[str]:
    where, params = compile_filter(parse_filter(flt), alias)
    table = f"documents {alias}" if alias else "documents"
    return {row[0] for row in conn.execute(f"SELECT document_id FROM {table} WHERE {where}", params)}


def _py_ids(docs: list[dict[str, Any]], flt: Any) -> set[str]:
    node = parse_filter(flt)
    return {d["document_id"] for d in docs if evaluate(node, d)}


# ---------------------------------------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases(), alias=st.sampled_from(["d", ""]))
def test_sql_matches_reference_evaluator(conn: sqlite3.Connection, case: Any, alias: str) -> None:
    docs, flts = case
    full = _load(conn, docs)
    for flt in flts:
        assert _sql_ids(conn, flt, alias) == _py_ids(full, flt), flt


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=single_conditions())
def test_each_operator_matches_on_every_field(conn: sqlite3.Connection, case: Any) -> None:
    docs, field, op, value = case
    full = _load(conn, docs)
    for cs in (False, True):
        flt = {"field": field, "operator": op, "value": value, "case_sensitive": cs}
        assert _sql_ids(conn, flt) == _py_ids(full, flt), flt


# ---------------------------------------------------------------------------------------------- examples


@pytest.mark.parametrize(("flt", "expected"), HAND_EXAMPLES)
def test_hand_examples(conn: sqlite3.Connection, flt: Any, expected: set[int]) -> None:
    full = _load(conn, EXAMPLE_DOCS)
    ids = {f"doc-{i}" for i in expected}
    assert _py_ids(full, flt) == ids
    assert _sql_ids(conn, flt) == ids


def test_no_filter_is_true() -> None:
    assert compile_filter(None) == ("1", [])
    assert compile_filter(None, "d") == ("1", [])


def test_alias_prefixes_columns_and_must_be_an_identifier() -> None:
    where, params = compile_filter(parse_filter({"document_id": "x", "a": 1}), "d")
    assert "d.document_id" in where and "d.payload" in where and "documents" not in where
    assert where.count("?") == len(params)
    with pytest.raises(ValueError):
        compile_filter(parse_filter({"a": 1}), "d; DROP TABLE documents")


def test_unaddressable_field_names_raise_validation_error() -> None:
    with pytest.raises(ValidationError):
        compile_filter(parse_filter({"field": 'a"b', "value": 1}))
    with pytest.raises(ValidationError):
        json_path("x\\y", "d")


def test_unbound_dynamic_value_is_refused() -> None:
    node = parse_filter({"field": "a", "value": {"type": "dynamic", "field": "inputs.a"}})
    with pytest.raises(ValueError, match="bind"):
        compile_filter(node)


def test_json_path_orders_like_the_field(conn: sqlite3.Connection) -> None:
    _load(conn, EXAMPLE_DOCS)
    assert json_path("document_id", "d") == "d.document_id"
    assert json_path("document_id.x") == "NULL"
    key = json_path("_internal.s", "d")
    rows = conn.execute(
        f"SELECT d.document_id FROM documents d WHERE {key} IS NOT NULL ORDER BY {key}"
    ).fetchall()
    assert [r[0] for r in rows] == ["doc-2", "doc-0"]
    quoted = json_path("it's")
    assert conn.execute(f"SELECT {quoted} FROM documents").fetchall()  # the quote is escaped


# ---------------------------------------------------------------------------------------------- index hints

INDEXABLE = ["a", "b", "tags", "meta", "meta.x", "meta.y", "meta.x.z", "c d", "é", "it's", "nope", "a.x"]


def _single_valued(docs: list[Doc], fields: list[str]) -> list[str]:
    """The fields payload_index would hint: never a list or an object (nor under a list) in any document."""
    return [f for f in fields if not any(holds_many(user, f.split(".")) for _, user, _ in docs)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_index_hints_never_change_what_a_filter_matches(conn: sqlite3.Connection, case: Any) -> None:
    docs, flts = case
    full = _load(conn, docs)
    fields = _single_valued(docs, INDEXABLE)
    for flt, folded in ((f, folded) for f in flts for folded in ([], fields)):  # with case-folded indexes too
        node = parse_filter(flt)
        where, params = compile_filter(node, "d")
        hint, hint_params, exact = index_hint(node, fields, "d", folded)
        rows = conn.execute(
            f"SELECT document_id FROM documents d WHERE {hint} AND ({where})", [*hint_params, *params]
        )
        expected = _py_ids(full, flt)
        assert {r[0] for r in rows} == expected, (flt, hint)
        if exact:  # the hint alone must then select exactly the same documents
            alone = conn.execute(f"SELECT document_id FROM documents d WHERE {hint}", hint_params)
            assert {r[0] for r in alone} == expected, (flt, hint)


def test_an_indexed_equality_uses_the_partial_index_and_a_list_field_gets_no_hint() -> None:
    connection = sqlite3.connect(":memory:")
    register_functions(connection)
    connection.execute(SCHEMA)
    connection.execute(
        f"CREATE INDEX px ON documents({index_expression('bucket')}) WHERE collection_id = 'c1'"
    )
    node = parse_filter(
        {"AND": [{"field": "bucket", "operator": "eq", "value": 7}, {"field": "x", "value": 1}]}
    )
    hint, params, _ = index_hint(node, ["bucket"], "")
    where, more = compile_filter(node, "")
    plan = connection.execute(
        f"EXPLAIN QUERY PLAN SELECT rowid FROM documents WHERE collection_id = 'c1' AND {hint} AND ({where})",
        [*params, *more],
    ).fetchall()
    assert any("USING INDEX px" in row[-1] for row in plan), plan
    assert index_hint(node, [], "") == ("1", [], False)  # a multi-valued field is left out by the caller
    text = parse_filter({"field": "bucket", "value": "Seven"})  # case-folded by default: no hint
    assert index_hint(text, ["bucket"], "") == ("1", [], False)
    assert index_hint(text, ["bucket"], "", ["bucket"]) == (
        f"(sl_fold({index_expression('bucket')}) IN (?))",
        ["seven"],
        True,
    )
    ranged = parse_filter({"AND": [{"field": "bucket", "operator": "gte", "value": 3}]})
    assert index_hint(ranged, ["bucket"], "")[2] is True  # with the evaluator's type test beside it
    exact = parse_filter({"AND": [{"field": "bucket", "operator": "in", "value": [7, 9]}]})
    assert index_hint(exact, ["bucket"], "")[2] is True
    assert index_hint(parse_filter({"field": "bucket", "value": 1}), ["bucket"], "")[2] is False  # true → 1


@pytest.mark.parametrize(
    "flt",
    [
        {"field": "a", "operator": "gte", "value": 0},
        {"field": "a", "operator": "lt", "value": 2},
        {"field": "a", "operator": "lte", "value": 1},
        {"field": "a", "operator": "gt", "value": 0.5},
        {"AND": [{"field": "a", "operator": "gt", "value": 1}, {"field": "a", "operator": "lt", "value": 3}]},
        {
            "AND": [
                {"field": "a", "operator": "gte", "value": -5},
                {"field": "a", "operator": "lt", "value": 0},
            ]
        },
    ],
)
def test_exact_range_hints_tell_booleans_and_text_from_numbers(conn: sqlite3.Connection, flt: Any) -> None:
    """JSON true/false are 1/0 to SQLite and text sorts above numbers: an exact range hint must still
    select only what the evaluator does, on its own."""
    values: list[Any] = [True, False, 0, 1, 2, 2.5, -1, "x", "", None]
    full = _load(conn, [("c1", {"a": v}, {}) for v in values])
    hint, params, exact = index_hint(parse_filter(flt), ["a"], "d")
    assert exact
    alone = {r[0] for r in conn.execute(f"SELECT document_id FROM documents d WHERE {hint}", params)}
    assert alone == _py_ids(full, flt), (flt, hint)
