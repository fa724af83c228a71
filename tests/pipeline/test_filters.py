"""Filter language: parsing, validation, dynamic inputs and the reference evaluator."""

from __future__ import annotations

import math
import pickle
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siftline.errors import ValidationError
from siftline.filters import (
    MISSING,
    And,
    Condition,
    Dynamic,
    Not,
    Or,
    RelaxedCondition,
    and_all,
    bind,
    evaluate,
    fields_of,
    get_path,
    matcher,
    parse_filter,
)
from siftline.testing.filter_strategies import (
    BOOL,
    D4,
    OPS,
    STRINGS,
    Drawing,
    draw_json,
    leaves,
    numbers,
    pick,
)

DOC: dict[str, Any] = {
    "document_id": "doc-1",
    "collection_id": "col-1",
    "title": "Straße Guide",
    "year": 2021,
    "rating": 4.5,
    "draft": False,
    "count": 0,
    "tags": ["News", "tech", 3, None],
    "empty": [],
    "nothing": None,
    "metadata": {"year": 2020, "published": "2021-03-04T05:06:07Z", "author": {"name": "Ada"}},
    "_internal": {"created_at": "2024-01-01T00:00:00Z", "score": 1},
}


def matches(flt: Any, doc: dict[str, Any] = DOC) -> bool:
    return evaluate(parse_filter(flt), doc)


def cond(field: str, op: str, value: Any, **extra: Any) -> dict[str, Any]:
    return {"field": field, "operator": op, "value": value, **extra}


# ---------------------------------------------------------------------------------------------- operators

OPERATOR_EXAMPLES = [
    # eq: JSON-type aware, case-insensitive strings, any element of a list, null only equals null
    (cond("year", "eq", 2021), True),
    (cond("year", "eq", 2021.0), True),
    (cond("year", "eq", "2021"), False),
    (cond("draft", "eq", False), True),
    (cond("draft", "eq", 0), False),
    (cond("count", "eq", False), False),
    (cond("count", "eq", 0.0), True),
    (cond("title", "eq", "STRASSE GUIDE"), True),
    (cond("title", "eq", "STRASSE GUIDE", case_sensitive=True), False),
    (cond("title", "eq", "Straße Guide", case_sensitive=True), True),
    (cond("nothing", "eq", None), True),
    (cond("missing", "eq", None), False),
    (cond("empty", "eq", None), False),
    (cond("tags", "eq", "news"), True),
    (cond("tags", "eq", 3.0), True),
    (cond("tags", "eq", None), True),
    (cond("metadata", "eq", 2020), False),
    (cond("metadata.author.name", "eq", "ada"), True),
    (cond("metadata.author.name.x", "eq", "ada"), False),
    (cond("tags.0", "eq", "News"), False),  # paths don't index into lists
    (cond("_internal.score", "eq", 1), True),
    (cond("document_id", "eq", "DOC-1"), True),
    # ne / nin: exactly NOT eq / NOT in (so true on a missing field)
    (cond("missing", "ne", 1), True),
    (cond("year", "ne", 2021), False),
    (cond("tags", "ne", "x"), True),
    (cond("tags", "ne", "TECH"), False),
    (cond("nothing", "ne", None), False),
    (cond("missing", "nin", [1]), True),
    (cond("tags", "nin", ["tech"]), False),
    (cond("year", "nin", []), True),
    # ordering: number vs number, string vs string, nothing else
    (cond("year", "gt", 2020), True),
    (cond("year", "gt", 2021), False),
    (cond("year", "gte", 2021), True),
    (cond("rating", "lt", 5), True),
    (cond("rating", "lte", 4.5), True),
    (cond("year", "gt", "2020"), False),
    (cond("draft", "lt", 1), False),
    (cond("metadata.published", "gte", "2021-01-01"), True),
    (cond("metadata.published", "lt", "2021-03-04T05:06:08Z"), True),
    (cond("title", "gt", "strasse"), True),
    (cond("title", "gt", "strasse", case_sensitive=True), False),
    (cond("tags", "gt", 2), True),
    (cond("tags", "gt", 3), False),
    (cond("missing", "gt", 0), False),
    # in
    (cond("year", "in", [2019, 2021]), True),
    (cond("year", "in", ["2021"]), False),
    (cond("year", "in", []), False),
    (cond("tags", "in", ["TECH"]), True),
    (cond("draft", "in", [0]), False),
    (cond("draft", "in", [False]), True),
    (cond("count", "in", [False, 0.0]), True),
    (cond("nothing", "in", [None]), True),
    (cond("missing", "in", [None]), False),
    # contains: substring of a string, element of a list
    (cond("title", "contains", "GUIDE"), True),
    (cond("title", "contains", "ss"), True),
    (cond("title", "contains", "ss", case_sensitive=True), False),
    (cond("title", "contains", ""), True),
    (cond("tags", "contains", "news"), True),
    (cond("tags", "contains", "ew"), False),
    (cond("tags", "contains", 3), True),
    (cond("year", "contains", 2), False),
    (cond("year", "contains", "2"), False),
    (cond("metadata", "contains", "year"), False),
    # starts_with / ends_with
    (cond("title", "starts_with", "strasse"), True),
    (cond("title", "starts_with", "strasse", case_sensitive=True), False),
    (cond("title", "starts_with", "Straße", case_sensitive=True), True),
    (cond("title", "ends_with", "GUIDE"), True),
    (cond("tags", "starts_with", "te"), True),
    (cond("year", "starts_with", "20"), False),
    (cond("title", "starts_with", ""), True),
    (cond("missing", "starts_with", ""), False),
    # regex: re.search, ignoring case unless case sensitive
    (cond("title", "regex", "^stra"), True),
    (cond("title", "regex", "^stra", case_sensitive=True), False),
    (cond("title", "regex", "gu.de$"), True),
    (cond("tags", "regex", "^n"), True),
    (cond("year", "regex", "2"), False),
    # text: case-insensitive substring whatever case_sensitive says
    (cond("title", "text", "GUIDE"), True),
    (cond("title", "text", "GUIDE", case_sensitive=True), True),
    (cond("year", "text", "2021"), False),
    # exists / is_null
    (cond("title", "exists", True), True),
    (cond("nothing", "exists", True), False),
    (cond("nothing", "exists", False), True),
    (cond("missing", "exists", True), False),
    (cond("missing", "exists", False), True),
    (cond("empty", "exists", True), True),
    (cond("nothing", "is_null", True), True),
    (cond("missing", "is_null", True), True),
    (cond("title", "is_null", True), False),
    (cond("title", "is_null", False), True),
    (cond("missing", "is_null", False), False),
]


@pytest.mark.parametrize(("flt", "expected"), OPERATOR_EXAMPLES)
def test_operator_examples(flt: dict[str, Any], expected: bool) -> None:
    assert matches(flt) is expected


# ---------------------------------------------------------------------------------------------- structure


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (None, True),
        ({}, True),
        ({"title": "straße guide"}, True),  # shorthand eq
        ({"title": "straße guide", "year": 2020}, False),  # all parts ANDed
        ({"metadata.year": 2020, "AND": [{"field": "year", "value": 2021}]}, True),
        ({"field": "year", "value": 2021}, True),  # bare condition, operator defaults to eq
        ({"field": "year", "operator": "GTE", "value": 2021}, True),  # operator names ignore case
        ({"AND": [{"year": 2021}, {"OR": [{"draft": True}, {"count": 0}]}]}, True),
        ({"AND": [{"year": 2021}, {"OR": [{"draft": True}, {"count": 1}]}]}, False),
        ({"NOT": [{"year": 2020}, {"year": 2019}]}, True),
        ({"NOT": [{"year": 2020}, {"year": 2021}]}, False),
        ({"NOT": [{"NOT": [{"year": 2021}]}]}, True),
        ({"AND": []}, True),
        ({"OR": []}, False),
        ({"NOT": []}, True),
        ({"AND": None, "OR": None, "NOT": None, "year": 2021}, True),  # null lists are absent
        ({"case_sensitive": True, "title": "straße guide"}, False),
        ({"case_sensitive": True, "AND": [{"title": "straße guide"}]}, False),  # inherited
        ({"case_sensitive": True, "AND": [{"case_sensitive": False, "title": "straße guide"}]}, True),
        ({"case_sensitive": True, "OR": [cond("title", "eq", "straße guide", case_sensitive=False)]}, True),
        ({"case_sensitive": None, "title": "straße guide"}, True),
    ],
)
def test_structure_examples(flt: Any, expected: bool) -> None:
    assert matches(flt) is expected


def test_parse_builds_the_expected_tree() -> None:
    node = parse_filter({"AND": [{"a": 1}], "OR": [{"b": "x"}], "NOT": [], "case_sensitive": True})
    assert node == And((Condition("a", "eq", 1, True), Or((Condition("b", "eq", "x", True),)), Not(())))
    assert parse_filter({"field": "a", "operator": "in", "value": [1, "x"]}) == Condition("a", "in", (1, "x"))
    assert parse_filter({"AND": [{"a": 1}]}) == Condition("a", "eq", 1)


def test_depth_limit() -> None:
    def nest(levels: int) -> dict[str, Any]:
        return {"x": 1} if levels == 1 else {"AND": [nest(levels - 1)]}

    assert matches(nest(16), {"x": 1})
    with pytest.raises(ValidationError) as exc:
        parse_filter(nest(17))
    assert exc.value.errors[0]["loc"] == ["filters", *(["AND", 0] * 16)]
    assert "16" in exc.value.errors[0]["msg"]


def test_helpers() -> None:
    node = parse_filter({"a.b": 1, "OR": [{"field": "c", "value": {"type": "dynamic", "field": "inputs.c"}}]})
    assert fields_of(node) == {"a.b", "c"}
    assert fields_of(None) == set()
    one, two = Condition("a", "eq", 1), Condition("b", "eq", 2)
    assert and_all(None, None) is None
    assert and_all(None, one) is one
    assert and_all(one, None, two) == And((one, two))
    assert get_path(DOC, "metadata.author.name") == "Ada"
    assert get_path(DOC, "nothing") is None
    assert get_path(DOC, "missing") is MISSING
    assert get_path(DOC, "tags.0") is MISSING
    assert get_path(DOC, "title.x") is MISSING
    assert matcher(None)({}) is True
    assert matcher(one)({"a": 1.0}) is True


def test_nodes_are_hashable_and_pickle() -> None:
    node = parse_filter(
        {"OR": [{"a": 1}, {"NOT": [cond("b", "regex", "^x")]}], "AND": [cond("c", "in", [1])]}
    )
    copy = pickle.loads(pickle.dumps(node))
    assert copy == node and hash(copy) == hash(node)
    assert [evaluate(copy, d) for d in ({"a": 1.0, "c": 1}, {"b": "X", "c": 1}, {"b": "y", "c": 1})] == [
        True,
        False,
        True,
    ]


# ------------------------------------------------------------------------------------------ dynamic values


def dyn(path: str) -> dict[str, str]:
    return {"type": "dynamic", "field": path}


@pytest.mark.parametrize("path", ["inputs.y", "INPUT.y", "input.y", "y"])
def test_dynamic_value_is_bound_from_inputs(path: str) -> None:
    node = parse_filter({"field": "year", "operator": "gte", "value": dyn(path)})
    assert node == Condition("year", "gte", Dynamic(path))
    bound, relaxed = bind(node, {"y": 2021})
    assert bound == Condition("year", "gte", 2021)
    assert relaxed == []
    assert evaluate(bound, DOC)


def test_nested_input_path_and_shorthand() -> None:
    bound, _ = bind(parse_filter({"title": dyn("inputs.q.title")}), {"q": {"title": "STRASSE guide"}})
    assert evaluate(bound, DOC)


def test_unbound_dynamic_value_refuses_to_evaluate() -> None:
    with pytest.raises(ValueError, match="bind"):
        matches({"field": "year", "value": dyn("inputs.y")})


@pytest.mark.parametrize("inputs", [{}, {"y": None}, {"other": 1}])
def test_missing_input_relaxes_the_condition(inputs: dict[str, Any]) -> None:
    node = parse_filter(
        {"AND": [{"field": "year", "operator": "gt", "value": dyn("inputs.y")}, {"draft": True}]}
    )
    bound, relaxed = bind(node, inputs)
    assert bound == Condition("draft", "eq", True)
    assert relaxed == [RelaxedCondition("year", "gt", "inputs.y")]


def test_relaxing_every_item_drops_the_parent() -> None:
    flt = {"OR": [{"year": dyn("a")}, {"year": dyn("b")}], "NOT": [{"title": dyn("c")}], "draft": False}
    bound, relaxed = bind(parse_filter(flt), {})
    assert bound == Condition("draft", "eq", False)
    assert [r.input_path for r in relaxed] == ["a", "b", "c"]
    bound, _ = bind(parse_filter({"OR": [{"year": dyn("a")}, {"year": 1999}]}), {})
    assert bound == Condition("year", "eq", 1999)  # the OR keeps its other item
    assert bind(parse_filter({"OR": [{"year": dyn("a")}]}), {}) == (
        None,
        [RelaxedCondition("year", "eq", "a")],
    )


def test_bind_keeps_static_filters_and_empty_or() -> None:
    node = parse_filter({"OR": [], "year": 2021})
    assert bind(node, {}) == (node, [])
    assert bind(node, {})[0] is node
    assert bind(None, {"x": 1}) == (None, [])


def test_bound_value_is_validated_for_its_operator() -> None:
    node = parse_filter({"field": "tags", "operator": "in", "value": dyn("inputs.ids")})
    with pytest.raises(ValidationError) as exc:
        bind(node, {"ids": "tech"})
    assert exc.value.errors[0]["loc"] == ["inputs", "ids"]
    assert "tags" in exc.value.errors[0]["msg"] and "list" in exc.value.errors[0]["msg"]
    with pytest.raises(ValidationError):
        bind(parse_filter({"field": "t", "operator": "regex", "value": dyn("r")}), {"r": "("})
    bound, _ = bind(node, {"ids": ["TECH", 7]})
    assert bound == Condition("tags", "in", ("TECH", 7))
    assert evaluate(bound, DOC)


# ---------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("flt", "loc"),
    [
        ({"AND": [{"field": "a", "operator": "bogus", "value": 1}]}, ["filters", "AND", 0, "operator"]),
        ({"AND": [{"x": 1}, {"y": 2}, cond("a", "in", 1)]}, ["filters", "AND", 2, "value"]),
        (cond("a", "exists", "yes"), ["filters", "value"]),
        (cond("a", "is_null", None), ["filters", "value"]),
        (cond("a", "regex", "("), ["filters", "value"]),
        ({"field": "", "value": 1}, ["filters", "field"]),
        ({"field": 3, "value": 1}, ["filters", "field"]),
        ({"field": None, "value": 1}, ["filters", "field"]),
        ({"field": "a..b", "value": 1}, ["filters", "field"]),
        ({"field": "a\nb", "value": 1}, ["filters", "field"]),
        ({"AND": {"x": 1}}, ["filters", "AND"]),
        ({"OR": [[{"x": 1}]]}, ["filters", "OR", 0]),
        ({"NOT": ["x"]}, ["filters", "NOT", 0]),
        (["x"], ["filters"]),
        ("x", ["filters"]),
        (5, ["filters"]),
        ({"case_sensitive": "yes"}, ["filters", "case_sensitive"]),
        ({"NOT": [{"field": "a", "value": 1, "extra": 2}]}, ["filters", "NOT", 0, "extra"]),
        ({"field": "a"}, ["filters", "value"]),
        ({"operator": "eq", "value": 1}, ["filters", "field"]),
        ({"tags": ["a", "b"]}, ["filters", "tags"]),
        ({"tags": {"x": 1}}, ["filters", "tags"]),
        ({"": 1}, ["filters", ""]),
        (cond("a", "eq", {"x": 1}), ["filters", "value"]),
        (cond("a", "eq", [1]), ["filters", "value"]),
        (cond("a", "eq", {"type": "dynamic", "field": ""}), ["filters", "value", "field"]),
        (cond("a", "eq", {"type": "dynamic", "field": "x", "default": 1}), ["filters", "value"]),
        (cond("a", "gt", True), ["filters", "value"]),
        (cond("a", "gt", None), ["filters", "value"]),
        (cond("a", "in", [1, [2]]), ["filters", "value", 1]),
        (cond("a", "nin", "ab"), ["filters", "value"]),
        (cond("a", "eq", math.nan), ["filters", "value"]),
        (cond("a", "eq", math.inf), ["filters", "value"]),
        (cond("a", "eq", 2**64), ["filters", "value"]),
        (cond("a", "starts_with", 1), ["filters", "value"]),
        (cond("a", "text", None), ["filters", "value"]),
        ({"field": "a", "operator": 5, "value": 1}, ["filters", "operator"]),
    ],
)
def test_bad_filters_raise_validation_error_at_the_right_place(flt: Any, loc: list[Any]) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_filter(flt)
    [error] = exc.value.errors
    assert error["loc"] == loc
    assert error["msg"] and ".".join(map(str, loc)) in exc.value.message


def test_messages_say_how_to_fix() -> None:
    with pytest.raises(ValidationError, match="use one of eq, ne"):
        parse_filter(cond("a", "between", 1))
    with pytest.raises(ValidationError, match='"operator": "in"'):
        parse_filter({"tags": ["a"]})
    with pytest.raises(ValidationError) as exc:
        parse_filter({"x": [1]}, loc=("body", "filters"))
    assert exc.value.errors[0]["loc"] == ["body", "filters", "x"]


# ---------------------------------------------------------------------------------------------- properties
# Random filters over random documents, checked against a small, independently written reference that
# interprets the raw JSON filter directly.

ABSENT = object()
ORDER = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def ref_kind(x: Any) -> str:
    if x is None:
        return "null"
    if x is True or x is False:
        return "bool"
    return {int: "num", float: "num", str: "str"}.get(type(x), "other")


def ref_same(a: Any, b: Any, cs: bool) -> bool:
    if ref_kind(a) != ref_kind(b) or ref_kind(a) == "other":
        return False
    if ref_kind(a) == "str" and not cs:
        return bool(a.casefold() == b.casefold())
    return bool(a == b)


def ref_lookup(doc: Any, field: str) -> Any:
    for key in field.split("."):
        doc = doc[key] if type(doc) is dict and key in doc else ABSENT
    return doc


def ref_condition(field: str, op: str, value: Any, cs: bool, doc: dict[str, Any]) -> bool:
    x = ref_lookup(doc, field)
    if op in ("ne", "nin"):
        return not ref_condition(field, {"ne": "eq", "nin": "in"}[op], value, cs, doc)
    if op in ("exists", "is_null"):
        present = x is not ABSENT and x is not None
        return present is value if op == "exists" else present is not value
    if x is ABSENT:
        return False
    norm = (lambda s: s) if cs else str.casefold
    if op == "contains" and type(x) is not list:
        return type(x) is str and type(value) is str and norm(value) in norm(x)
    for e in x if type(x) is list else [x]:
        if op in ("eq", "contains") and ref_same(e, value, cs):
            return True
        if op == "in" and any(ref_same(e, v, cs) for v in value):
            return True
        if op in ORDER and ref_kind(e) == ref_kind(value) == "num" and ORDER[op](e, value):
            return True
        if op in ORDER and ref_kind(e) == ref_kind(value) == "str" and ORDER[op](norm(e), norm(value)):
            return True
        if type(e) is str and (
            (op == "starts_with" and norm(e).startswith(norm(value)))
            or (op == "ends_with" and norm(e).endswith(norm(value)))
            or (op == "regex" and re.search(value, e, 0 if cs else re.IGNORECASE))
            or (op == "text" and value.casefold() in e.casefold())
        ):
            return True
    return False


def ref_match(flt: dict[str, Any], doc: dict[str, Any], cs: bool = False) -> bool:
    cs = flt.get("case_sensitive", cs)
    if "field" in flt:
        return ref_condition(flt["field"], flt.get("operator", "eq"), flt["value"], cs, doc)
    results = []
    for key, value in flt.items():
        if key == "AND":
            results.append(all(ref_match(f, doc, cs) for f in value))
        elif key == "OR":
            results.append(any(ref_match(f, doc, cs) for f in value))
        elif key == "NOT":
            results.append(not any(ref_match(f, doc, cs) for f in value))
        elif key != "case_sensitive":
            results.append(ref_condition(key, "eq", value, cs, doc))
    return all(results)


def ref_relax(flt: dict[str, Any], inputs: dict[str, Any], dropped: list[str]) -> dict[str, Any] | None:
    """Substitute dynamic values; remove those whose input is absent, and objects emptied that way."""

    def resolve(value: Any) -> Any:
        if isinstance(value, dict):
            name = value["field"].split(".")[-1]
            if inputs.get(name) is None:
                dropped.append(value["field"])
                return ABSENT
            return inputs[name]
        return value

    if "field" in flt:
        value = resolve(flt["value"])
        return None if value is ABSENT else {**flt, "value": value}
    out: dict[str, Any] = {}
    lost = False
    for key, value in flt.items():
        if key in ("AND", "OR", "NOT"):
            kept = [r for r in (ref_relax(f, inputs, dropped) for f in value) if r is not None]
            lost = lost or len(kept) < len(value)
            if kept or not value:
                out[key] = kept
        elif key == "case_sensitive":
            out[key] = value
        elif (resolved := resolve(value)) is ABSENT:
            lost = True
        else:
            out[key] = resolved
    return None if lost and not set(out) - {"case_sensitive"} else out


# -- drawing: siftline.testing.filter_strategies, over any code point (NUL and lone surrogates included)
# and documents that may hold NaN, infinities and huge integers (values no filter can be given).

strings = st.one_of(st.sampled_from(STRINGS), st.sampled_from(STRINGS), st.text(max_size=6))
doc_numbers = numbers | st.integers() | st.floats()
doc_scalars = st.one_of(st.none(), st.booleans(), doc_numbers, strings, strings)
FIELDS = [
    "a",
    "b",
    "tags",
    "meta",
    "meta.x",
    "meta.y",
    "meta.x.z",
    "nope",
    "a.x",
    "document_id",
    "_internal.s",
]
ANY_TEXT = Drawing(strings, numbers, FIELDS)


@st.composite
def documents(draw: st.DrawFn) -> list[dict[str, Any]]:
    docs = []
    for i in range(draw(st.integers(1, 6))):
        user = {k: draw_json(draw, leaf=doc_scalars) for k in ("a", "b", "tags", "meta") if draw(D4)}
        doc = {"document_id": f"doc-{i}", **user}
        doc["_internal"] = {"s": draw_json(draw, leaf=doc_scalars)} if draw(BOOL) else {}
        docs.append(doc)
    return docs


def parse_ok(value: Any) -> bool:
    """Can this document value be used as a filter value (finite, 64-bit integers)?"""
    if isinstance(value, float):
        return math.isfinite(value)
    return not isinstance(value, int) or -(2**63) <= value < 2**63


def draw_filter(draw: st.DrawFn, pools: dict[str, list[Any]], inputs: dict[str, Any]) -> Any:
    """A random filter tree; some values become dynamic references (present or not in ``inputs``)."""

    def maybe_dynamic(value: Any) -> Any:
        if draw(D4):
            return value
        name = f"v{len(inputs)}"
        inputs[name] = [value, value, None, ABSENT][draw(D4)]
        return {"type": "dynamic", "field": pick(draw, ["inputs.", "INPUT.", ""]) + name}

    return ANY_TEXT.draw_filter(draw, pools, wrap=maybe_dynamic)


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[dict[str, Any]], Any, dict[str, Any]]:
    """Documents, a filter whose values mostly come from them, and the inputs for its dynamic values."""
    docs = draw(documents())
    pools = {
        f: [x for x in leaves([ref_lookup(d, f) for d in docs]) if x is not ABSENT and parse_ok(x)]
        for f in FIELDS
    }
    inputs: dict[str, Any] = {}
    flt = draw_filter(draw, pools, inputs)
    return docs, flt, {k: v for k, v in inputs.items() if v is not ABSENT}


@settings(max_examples=400, deadline=None)
@given(case=cases())
def test_evaluate_agrees_with_the_reference(case: Any) -> None:
    docs, flt, inputs = case
    dropped: list[str] = []
    relaxed_json = ref_relax(flt, inputs, dropped) if flt else None
    node, relaxed = bind(parse_filter(flt), inputs)
    assert [r.input_path for r in relaxed] == dropped
    for doc in docs:
        expected = True if relaxed_json is None else ref_match(relaxed_json, doc)
        assert evaluate(node, doc) is expected, (relaxed_json, doc)


_keys = st.sampled_from(
    ["AND", "OR", "NOT", "field", "operator", "value", "case_sensitive", "type", "x", "a.b", ""]
)
_json_any = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=5)
    | st.sampled_from([*OPS, "EQ"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(_keys | st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(obj=_json_any, inputs=st.dictionaries(st.sampled_from(["x", "a", "inputs"]), _json_any, max_size=3))
def test_parse_and_bind_raise_only_validation_errors(obj: Any, inputs: dict[str, Any]) -> None:
    try:
        node, _ = bind(parse_filter(obj), inputs)
    except ValidationError as exc:
        assert exc.errors and exc.errors[0]["msg"]
        assert exc.errors[0]["loc"][0] in ("filters", "inputs")
        return
    evaluate(node, DOC)  # a parsed and bound filter always evaluates
    evaluate(node, {"x": obj, "a": {"b": obj}})
