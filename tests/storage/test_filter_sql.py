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
from siftline.pipeline.filters import evaluate, parse_filter
from siftline.storage.sqlite.filter_sql import compile_filter, json_path, register_functions

SCHEMA = (
    "CREATE TABLE documents(rowid INTEGER PRIMARY KEY, collection_id TEXT, document_id TEXT, "
    "payload TEXT, internal TEXT)"
)

# ---------------------------------------------------------------------------------------------- strategies

STRINGS = ["abc", "ABC", "Abc", "ab", "b", "", "ß", "SS", "ss", "straße", "STRASSE", "İ", "i̇", "x y",
           "2024-01-02", "2023-12-31T10:00:00Z", "ﬁ", "FI", "Σς", "1", "true",
           "null", "it's", "a%_b"]  # fmt: skip
_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6)
_small_numbers = st.sampled_from([0, 1, -1, 2, 10, 1.0, 1.5, -0.0, 2.5, 2**53 + 1, float(2**53)])
_any_number = st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
strings = st.one_of(st.sampled_from(STRINGS), st.sampled_from(STRINGS), _text)
numbers = st.one_of(_small_numbers, _small_numbers, _any_number)
scalars = st.one_of(st.none(), st.booleans(), numbers, strings, strings)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["x", "y", "z"]), inner, max_size=3),
    max_leaves=6,
)
USER_KEYS = ["a", "b", "tags", "meta", "c d", "é", "it's"]
user_fields = st.dictionaries(st.sampled_from(USER_KEYS), json_values, min_size=2, max_size=6)
internals = st.fixed_dictionaries(
    {}, optional={"score": numbers, "tags": st.lists(strings, max_size=3), "flag": st.booleans() | st.none()}
)
FIELDS = ["a", "b", "tags", "meta", "meta.x", "meta.y", "meta.x.z", "c d", "é", "it's", "nope", "a.x",
          "document_id", "collection_id", "document_id.x", "_internal", "_internal.score", "_internal.tags",
          "_internal.flag"]  # fmt: skip
REGEXES = ["^a", "b$", "a.c", "[sß]", "^$", r"\d", "x y", "(?i)abc", "", "İ", "^ab+", "ς"]
VALUES = {
    "eq": scalars, "ne": scalars, "contains": scalars,
    "gt": numbers | strings, "gte": numbers | strings, "lt": numbers | strings, "lte": numbers | strings,
    "in": st.lists(scalars, max_size=4), "nin": st.lists(scalars, max_size=4),
    "starts_with": strings, "ends_with": strings, "text": strings,
    "regex": st.sampled_from(REGEXES), "exists": st.booleans(), "is_null": st.booleans(),
}  # fmt: skip


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(sorted(VALUES)))
    cond: dict[str, Any] = {"field": draw(st.sampled_from(FIELDS)), "operator": op, "value": draw(VALUES[op])}
    if op == "eq" and draw(st.booleans()):
        del cond["operator"]
    if draw(st.integers(0, 3)) == 0:
        cond["case_sensitive"] = draw(st.booleans())
    return cond


filters = st.recursive(
    conditions(),
    lambda inner: st.fixed_dictionaries(
        {},
        optional={
            "AND": st.lists(inner, max_size=3),
            "OR": st.lists(inner, max_size=3),
            "NOT": st.lists(inner, max_size=3),
            "case_sensitive": st.booleans(),
            "b": scalars,
        },
    ),
    max_leaves=8,
)
documents = st.lists(
    st.tuples(st.sampled_from(["news", "NEWS", "blog"]), user_fields, internals), min_size=1, max_size=8
)


# ---------------------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def conn() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:")
    register_functions(connection)
    connection.execute(SCHEMA)
    yield connection
    connection.close()


def _load(
    conn: sqlite3.Connection, docs: list[tuple[str, dict[str, Any], dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Store the documents (replacing the table's rows) and return their evaluate() dicts."""
    conn.execute("DELETE FROM documents")
    full = []
    for i, (collection, user, internal) in enumerate(docs):
        doc_id = f"doc-{i}"
        conn.execute(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?)",
            (
                i + 1,
                collection,
                doc_id,
                json.dumps(user, ensure_ascii=False),
                json.dumps(internal, ensure_ascii=False),
            ),
        )
        full.append({"document_id": doc_id, "collection_id": collection, **user, "_internal": internal})
    return full


def _sql_ids(conn: sqlite3.Connection, flt: Any, alias: str = "d") -> set[str]:
    where, params = compile_filter(parse_filter(flt), alias)
    table = f"documents {alias}" if alias else "documents"
    return {row[0] for row in conn.execute(f"SELECT document_id FROM {table} WHERE {where}", params)}


def _py_ids(docs: list[dict[str, Any]], flt: Any) -> set[str]:
    node = parse_filter(flt)
    return {d["document_id"] for d in docs if evaluate(node, d)}


# ---------------------------------------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=documents, flts=st.lists(filters, min_size=1, max_size=4), alias=st.sampled_from(["d", ""]))
def test_sql_matches_reference_evaluator(
    conn: sqlite3.Connection, docs: Any, flts: list[Any], alias: str
) -> None:
    full = _load(conn, docs)
    for flt in flts:
        assert _sql_ids(conn, flt, alias) == _py_ids(full, flt), flt


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=documents, field=st.sampled_from(FIELDS), op=st.sampled_from(sorted(VALUES)), data=st.data())
def test_each_operator_matches_on_every_field(
    conn: sqlite3.Connection, docs: Any, field: str, op: str, data: st.DataObject
) -> None:
    full = _load(conn, docs)
    for cs in (False, True):
        flt = {"field": field, "operator": op, "value": data.draw(VALUES[op]), "case_sensitive": cs}
        assert _sql_ids(conn, flt) == _py_ids(full, flt), flt


# ---------------------------------------------------------------------------------------------- examples


EXAMPLE_DOCS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "news",
        {"title": "Straße", "year": 2021, "tags": ["A", "b"], "flag": True, "meta": {"n": None}},
        {"s": 1},
    ),
    ("news", {"title": "strasse", "year": 2019.5, "tags": "a", "flag": 1, "meta": {"n": 0}}, {}),
    ("blog", {"title": None, "year": "2021", "tags": [], "flag": False, "meta": [{"n": 1}]}, {"s": 0.5}),
    ("blog", {"year": True, "tags": [["a"]]}, {}),
]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"title": "STRASSE"}, {0, 1}),
        ({"field": "title", "value": "STRASSE", "case_sensitive": True}, set()),
        ({"field": "year", "operator": "gte", "value": 2020}, {0}),
        ({"field": "year", "operator": "lt", "value": "2022"}, {2}),
        ({"field": "year", "operator": "eq", "value": 1}, set()),
        ({"field": "flag", "operator": "eq", "value": True}, {0}),
        ({"field": "flag", "operator": "in", "value": [1, False]}, {1, 2}),
        ({"field": "tags", "operator": "contains", "value": "a"}, {0, 1}),
        ({"field": "tags", "value": "a"}, {0, 1}),
        ({"field": "title", "operator": "exists", "value": True}, {0, 1}),
        ({"field": "title", "operator": "is_null", "value": True}, {2, 3}),
        ({"field": "title", "operator": "ne", "value": "strasse"}, {2, 3}),
        ({"field": "meta.n", "operator": "is_null", "value": False}, {1}),
        ({"field": "meta.n", "value": None}, {0}),
        ({"field": "_internal.s", "operator": "gt", "value": 0.7}, {0}),
        ({"field": "collection_id", "operator": "in", "value": ["BLOG"]}, {2, 3}),
        ({"field": "document_id", "operator": "regex", "value": "^doc-[01]$"}, {0, 1}),
        ({"field": "title", "operator": "text", "value": "RASS", "case_sensitive": True}, {0, 1}),
        ({"field": "title", "operator": "ends_with", "value": "SSE"}, {0, 1}),
        ({"field": "title", "operator": "ends_with", "value": "ße", "case_sensitive": True}, {0}),
        ({"NOT": [{"collection_id": "news"}], "OR": [{"tags": "a"}, {"year": True}]}, {3}),
        ({"OR": []}, set()),
        ({"NOT": []}, {0, 1, 2, 3}),
    ],
)
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
