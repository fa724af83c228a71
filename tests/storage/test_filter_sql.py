"""The SQLite compilation of filters matches exactly what the Python reference evaluator matches."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from typing import Any, TypeAlias

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siftline.errors import ValidationError
from siftline.pipeline.filters import evaluate, parse_filter
from siftline.storage.sqlite.filter_sql import (
    compile_filter,
    index_expression,
    index_hint,
    json_path,
    register_functions,
)
from siftline.storage.sqlite.payload_index import holds_many

SCHEMA = (
    "CREATE TABLE documents(rowid INTEGER PRIMARY KEY, collection_id TEXT, document_id TEXT, "
    "payload TEXT, internal TEXT)"
)

# ---------------------------------------------------------------------------------------------- strategies
# Hand-rolled drawing (instead of nested st.recursive/st.composite) keeps generation fast, and filter
# values come mostly from the documents' own values at the chosen field, so filters match some rows.

STRINGS = ["abc", "ABC", "Abc", "ab", "b", "", "ß", "SS", "ss", "straße", "STRASSE", "İ", "i̇", "x y",
           "2024-01-02", "2023-12-31T10:00:00Z", "ﬁ", "FI", "Σς", "1", "true", "null", "it's",
           "a%_b"]  # fmt: skip
_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6)
_small_numbers = st.sampled_from([0, 1, -1, 2, 10, 1.0, 1.5, -0.0, 2.5, 2**53 + 1, float(2**53)])
_any_number = st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
strings = st.one_of(st.sampled_from(STRINGS), st.sampled_from(STRINGS), _text)
numbers = st.one_of(_small_numbers, _small_numbers, _any_number)
scalars = st.one_of(st.none(), st.booleans(), numbers, strings, strings)
USER_KEYS = ["a", "b", "tags", "meta", "c d", "é", "it's"]
FIELDS = ["a", "b", "tags", "meta", "meta.x", "meta.y", "meta.x.z", "c d", "é", "it's", "nope", "a.x",
          "document_id", "collection_id", "document_id.x", "_internal", "_internal.score", "_internal.tags",
          "_internal.flag"]  # fmt: skip
REGEXES = ["^a", "b$", "a.c", "[sß]", "^$", r"\d", "x y", "(?i)abc", "", "İ", "^ab+", "ς"]
OPS = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "starts_with", "ends_with", "regex",
       "exists", "is_null", "text"]  # fmt: skip
_BOOL, _D4, _D5, _PICK = st.booleans(), st.integers(0, 3), st.integers(0, 4), st.integers(0, 2**16)
_CUT = st.tuples(st.integers(0, 3), st.integers(-3, 8) | st.none())
Doc: TypeAlias = tuple[str, dict[str, Any], dict[str, Any]]  # collection, user fields, _internal


def _pick(draw: st.DrawFn, items: list[Any]) -> Any:
    return items[draw(_PICK) % len(items)]


def _json(draw: st.DrawFn, depth: int = 0) -> Any:
    kind = draw(_D4) if depth < 2 else 0
    if kind <= 1:
        return draw(scalars)
    if kind == 2:
        return [_json(draw, depth + 1) for _ in range(draw(_D4))]
    return {k: _json(draw, depth + 1) for k in ("x", "y", "z") if draw(_BOOL)}


@st.composite
def documents(draw: st.DrawFn) -> list[Doc]:
    docs = []
    for _ in range(draw(st.integers(2, 8))):
        user = {k: _json(draw) for k in USER_KEYS if draw(_D4)}
        internal: dict[str, Any] = {"score": draw(numbers)} if draw(_BOOL) else {}
        if draw(_BOOL):
            internal["tags"] = [draw(strings) for _ in range(draw(_D4))]
        if draw(_BOOL):
            internal["flag"] = draw(st.none() | _BOOL)
        docs.append((_pick(draw, ["news", "NEWS", "blog"]), user, internal))
    return docs


def _leaves(value: Any) -> Iterator[Any]:
    """Every scalar inside a JSON value."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _recase(s: str, how: int) -> str:
    return [s, s.upper(), s.lower(), s.swapcase(), s.casefold()][how]


def _near(draw: st.DrawFn, pool: list[Any]) -> Any:
    """Mostly a value from ``pool`` (string case changed now and then), else any scalar."""
    x = _pick(draw, pool) if pool and draw(_D4) else draw(scalars)
    return _recase(x, draw(_D5)) if isinstance(x, str) else x


def _near_text(draw: st.DrawFn, pool: list[Any]) -> str:
    """A slice of a (recased) string from ``pool``, or of any string."""
    texts = [x for x in pool if isinstance(x, str)]
    s = _pick(draw, texts) if texts and draw(_BOOL) else draw(strings)
    i, j = draw(_CUT)
    return _recase(s, draw(_D5))[i:j]


def draw_value(draw: st.DrawFn, pool: list[Any], op: str) -> Any:
    """A valid value for ``op``, close to the values in ``pool``."""
    if op in ("exists", "is_null"):
        return draw(_BOOL)
    if op in ("in", "nin"):
        return [_near(draw, pool) for _ in range(draw(_D5))]
    if op in ("starts_with", "ends_with", "text") or (op == "contains" and draw(_BOOL)):
        return _near_text(draw, pool)
    if op == "regex":
        return re.escape(_near_text(draw, pool)) if draw(_BOOL) else _pick(draw, REGEXES)
    x = _near(draw, pool)
    if op in ("gt", "gte", "lt", "lte") and (x is None or isinstance(x, bool | list)):
        return draw(numbers | strings)
    return x


def draw_condition(draw: st.DrawFn, pools: dict[str, list[Any]]) -> dict[str, Any]:
    field, op = _pick(draw, FIELDS), _pick(draw, OPS)
    cond: dict[str, Any] = {"field": field, "operator": op, "value": draw_value(draw, pools[field], op)}
    if op == "eq" and draw(_BOOL):
        del cond["operator"]
    if not draw(_D4):
        cond["case_sensitive"] = draw(_BOOL)
    return cond


def draw_filter(draw: st.DrawFn, pools: dict[str, list[Any]], depth: int = 0) -> dict[str, Any]:
    """A random filter tree: AND/OR/NOT lists, case_sensitive, a shorthand key, conditions."""
    if depth >= 3 or draw(_D4) <= 1:
        return draw_condition(draw, pools)
    obj: dict[str, Any] = {}
    for key in ("AND", "OR", "NOT"):
        if draw(_BOOL):
            obj[key] = [draw_filter(draw, pools, depth + 1) for _ in range(draw(_D4))]
    if not draw(_D4):
        obj["case_sensitive"] = draw(_BOOL)
    if not draw(_D4):
        obj["b"] = _near(draw, pools["b"])
    return obj


def _as_docs(docs: list[Doc]) -> list[dict[str, Any]]:
    """The dicts evaluate() sees for the generated documents."""
    return [
        {"document_id": f"doc-{i}", "collection_id": c, **user, "_internal": internal}
        for i, (c, user, internal) in enumerate(docs)
    ]


def _at(doc: Any, field: str) -> Any:
    for part in field.split("."):
        doc = doc.get(part) if isinstance(doc, dict) else None
    return doc


def _pools(docs: list[Doc]) -> dict[str, list[Any]]:
    """Per field, the distinct scalars stored there in the documents."""
    full = _as_docs(docs)
    return {
        f: [x for _, x in sorted({repr(x): x for d in full for x in _leaves(_at(d, f))}.items())]
        for f in FIELDS
    }


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[Doc], list[dict[str, Any]]]:
    """Documents, and up to four filters whose values mostly come from those documents."""
    docs = draw(documents())
    pools = _pools(docs)
    return docs, [draw_filter(draw, pools) for _ in range(draw(st.integers(1, 4)))]


@st.composite
def single_conditions(draw: st.DrawFn) -> tuple[list[Doc], str, str, Any]:
    """Documents, a field, an operator and a value for it."""
    docs, field, op = draw(documents()), _pick(draw, FIELDS), _pick(draw, OPS)
    return docs, field, op, draw_value(draw, _pools(docs)[field], op)


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
    return _as_docs(docs)


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
    for flt in flts:
        node = parse_filter(flt)
        where, params = compile_filter(node, "d")
        hint, hint_params, exact = index_hint(node, fields, "d")
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
    exact = parse_filter({"AND": [{"field": "bucket", "operator": "in", "value": [7, 9]}]})
    assert index_hint(exact, ["bucket"], "")[2] is True
    assert index_hint(parse_filter({"field": "bucket", "value": 1}), ["bucket"], "")[2] is False  # true → 1
