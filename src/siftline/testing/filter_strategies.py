"""Hypothesis drawing of random JSON documents and random filter trees over them.

What it draws:

* :func:`draw_json`: a JSON value up to two levels deep (scalars, lists, objects with keys x, y, z);
  :func:`draw_fields`: a document's user fields (over :data:`USER_KEYS`, some missing) and its
  ``_internal`` fields (score, tags, flag, meta, each maybe missing).
* :class:`Drawing`: filter values valid for an operator (:meth:`~Drawing.draw_value`), conditions and
  AND/OR/NOT trees with ``case_sensitive`` and a shorthand key (:meth:`~Drawing.draw_filter`). Values
  come mostly from ``pools`` (:func:`pools_of`: per field, the scalars the documents hold there), with
  the case of strings changed now and then, so that filters match some documents and miss others.
* :data:`STORABLE`: the :class:`Drawing` of what every storage backend must store and filter: strings
  without NUL or lone surrogates, integers within 64 bits, finite floats (the limits ``filter_sql``
  documents for SQLite).

Drawing is hand-rolled (``draw`` calls on a few flat strategies inside one ``st.composite``) instead of
nested ``st.recursive`` / ``st.composite`` strategies: it is much faster.

Used by :mod:`siftline.testing.cache_contract` (``match_documents`` and ``field_values`` against the
reference evaluator), ``tests/storage/test_filter_sql.py`` (the SQLite compilation of filters against the
reference evaluator) and ``tests/pipeline/test_filters.py`` (the reference evaluator against an
independent one, with a :class:`Drawing` of any code point). It lives here, not under ``tests/``, because
the shipped contract suite cannot import from the tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeAlias

from hypothesis import strategies as st

from siftline.filters import MISSING, get_path

STRINGS = ["abc", "ABC", "Abc", "ab", "b", "", "ß", "SS", "ss", "straße", "STRASSE", "İ", "i̇", "x y",
           "2024-01-02", "2023-12-31T10:00:00Z", "ﬁ", "FI", "Σς", "σΣ", "1", "true", "null", "it's",
           "a%_b"]  # fmt: skip
_text = st.text(st.characters(codec="utf-8", blacklist_characters="\x00"), max_size=6)  # no surrogates
_small_numbers = st.sampled_from([0, 1, -1, 2, 10, 1.0, 1.5, -0.0, 2.5, 2**53 + 1, float(2**53), 0.1, 1e300])
_any_number = st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
strings = st.one_of(st.sampled_from(STRINGS), st.sampled_from(STRINGS), _text)
numbers = st.one_of(_small_numbers, _small_numbers, _any_number)
scalars = st.one_of(st.none(), st.booleans(), numbers, strings, strings)
USER_KEYS = ["a", "b", "tags", "meta", "c d", "é", "it's"]
FIELDS = ["a", "b", "tags", "meta", "meta.x", "meta.y", "meta.x.z", "c d", "é", "it's", "nope", "a.x",
          "document_id", "collection_id", "document_id.x", "_internal", "_internal.score", "_internal.tags",
          "_internal.flag", "_internal.meta.x"]  # fmt: skip
REGEXES = ["^a", "b$", "a.c", "[sß]", "^$", r"\d", "x y", "(?i)abc", "", "İ", "^ab+", "ς"]
OPS = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "starts_with", "ends_with", "regex",
       "exists", "is_null", "text"]  # fmt: skip
ORDER_OPS = ("gt", "gte", "lt", "lte")

# Flat strategies the drawing is made of: ``not draw(D4)`` is a one-in-four chance.
BOOL, D4, D5, PICK = st.booleans(), st.integers(0, 3), st.integers(0, 4), st.integers(0, 2**16)
CUT = st.tuples(st.integers(0, 3), st.integers(-3, 8) | st.none())


def pick(draw: st.DrawFn, items: Sequence[Any]) -> Any:
    """One of ``items`` (not empty)."""
    return items[draw(PICK) % len(items)]


def draw_json(draw: st.DrawFn, depth: int = 0, leaf: st.SearchStrategy[Any] = scalars) -> Any:
    """A JSON value: a ``leaf`` or, while ``depth`` < 2, a list or an object of keys x, y, z."""
    kind = draw(D4) if depth < 2 else 0
    if kind <= 1:
        return draw(leaf)
    if kind == 2:
        return [draw_json(draw, depth + 1, leaf) for _ in range(draw(D4))]
    return {k: draw_json(draw, depth + 1, leaf) for k in ("x", "y", "z") if draw(BOOL)}


def draw_fields(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A document's user fields (some of :data:`USER_KEYS`) and ``_internal`` fields, of storable values."""
    user = {k: draw_json(draw) for k in USER_KEYS if draw(D4)}
    internal: dict[str, Any] = {"score": draw(numbers)} if draw(BOOL) else {}
    if draw(BOOL):
        internal["tags"] = [draw(strings) for _ in range(draw(D4))]
    if draw(BOOL):
        internal["flag"] = draw(st.none() | BOOL)
    if not draw(D4):
        internal["meta"] = draw_json(draw, 1)
    return user, internal


def leaves(value: Any) -> Iterator[Any]:
    """Every scalar inside a JSON value."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            yield from leaves(item)
    else:
        yield value


def pools_of(docs: Iterable[Mapping[str, Any]], fields: Sequence[str] = FIELDS) -> dict[str, list[Any]]:
    """Per field, the distinct scalars the documents hold there (``None`` where one has no such field)."""
    docs = list(docs)
    return {f: _distinct(x for d in docs for x in leaves(_at(d, f))) for f in fields}


def _at(doc: Mapping[str, Any], name: str) -> Any:
    value = get_path(doc, name)
    return None if value is MISSING else value


def _distinct(values: Iterable[Any]) -> list[Any]:
    return [x for _, x in sorted({repr(x): x for x in values}.items())]


def recase(s: str, how: int) -> str:
    """``s`` as is (``how`` 0), upper-, lower-, swap- or casefolded (1 to 4)."""
    return [s, s.upper(), s.lower(), s.swapcase(), s.casefold()][how]


def _same(value: Any) -> Any:
    return value


class Drawing:
    """Filters drawn from ``strings`` and ``numbers`` over ``fields`` (``scalars``: null, bools, numbers
    and strings)."""

    def __init__(
        self,
        strings: st.SearchStrategy[str],
        numbers: st.SearchStrategy[Any],
        fields: Sequence[str] = FIELDS,
    ) -> None:
        self.strings, self.numbers, self.fields = strings, numbers, list(fields)
        self.scalars = st.one_of(st.none(), st.booleans(), numbers, strings, strings)
        self.order_values = numbers | strings

    def near(self, draw: st.DrawFn, pool: list[Any]) -> Any:
        """Mostly a value from ``pool`` (string case changed now and then), else any scalar."""
        x = pick(draw, pool) if pool and draw(D4) > 0 else draw(self.scalars)
        return recase(x, draw(D5)) if isinstance(x, str) else x

    def near_text(self, draw: st.DrawFn, pool: list[Any]) -> str:
        """A slice of a string from ``pool`` (or of any string), its case changed before or after slicing."""
        texts = [x for x in pool if isinstance(x, str)]
        s = pick(draw, texts) if bool(texts) and draw(BOOL) else draw(self.strings)
        i, j = draw(CUT)
        how = draw(D5)
        return recase(s, how)[i:j] if draw(BOOL) else recase(s[i:j], how)

    def draw_value(self, draw: st.DrawFn, pool: list[Any], op: str) -> Any:
        """A valid value for ``op``, close to the values in ``pool``."""
        if op in ("exists", "is_null"):
            return draw(BOOL)
        if op in ("in", "nin"):
            return [self.near(draw, pool) for _ in range(draw(D5))]
        if op in ("starts_with", "ends_with", "text") or (op == "contains" and draw(BOOL)):
            return self.near_text(draw, pool)
        if op == "regex":
            return re.escape(self.near_text(draw, pool)) if draw(BOOL) else pick(draw, REGEXES)
        x = self.near(draw, pool)
        if op in ORDER_OPS and (x is None or isinstance(x, bool | list)):
            return draw(self.order_values)
        return x

    def draw_condition(
        self, draw: st.DrawFn, pools: Mapping[str, list[Any]], wrap: Callable[[Any], Any] = _same
    ) -> dict[str, Any]:
        """A condition on one of ``fields``; ``wrap`` may replace its value (by a dynamic reference, say)."""
        name, op = pick(draw, self.fields), pick(draw, OPS)
        cond: dict[str, Any] = {
            "field": name,
            "operator": op,
            "value": wrap(self.draw_value(draw, pools[name], op)),
        }
        if op == "eq" and draw(BOOL):
            del cond["operator"]
        if not draw(D4):
            cond["case_sensitive"] = draw(BOOL)
        return cond

    def draw_filter(
        self,
        draw: st.DrawFn,
        pools: Mapping[str, list[Any]],
        depth: int = 0,
        wrap: Callable[[Any], Any] = _same,
    ) -> dict[str, Any]:
        """A random filter tree: AND/OR/NOT lists, case_sensitive, a shorthand key (``b``), conditions;
        ``wrap`` may replace each value drawn."""
        if depth >= 3 or draw(D4) <= 1:
            return self.draw_condition(draw, pools, wrap)
        obj: dict[str, Any] = {}
        for key in ("AND", "OR", "NOT"):
            if draw(BOOL):
                obj[key] = [self.draw_filter(draw, pools, depth + 1, wrap) for _ in range(draw(D4))]
        if not draw(D4):
            obj["case_sensitive"] = draw(BOOL)
        if not draw(D4):
            obj["b"] = wrap(self.near(draw, pools["b"]))
        return obj


STORABLE = Drawing(strings, numbers)


# ---------------------------------------------------------------------------------------------- cases
# What the backends' filter compilers are checked against ``evaluate`` with (tests/storage/test_filter_sql.py,
# tests/postgres/test_postgres_filters.py): documents, filters over them, and hand-made examples.

Doc: TypeAlias = tuple[str, dict[str, Any], dict[str, Any]]  # collection, user fields, _internal


@st.composite
def documents(draw: st.DrawFn) -> list[Doc]:
    docs = []
    for _ in range(draw(st.integers(2, 8))):
        user, internal = draw_fields(draw)
        docs.append((pick(draw, ["news", "NEWS", "blog"]), user, internal))
    return docs


def as_docs(docs: list[Doc]) -> list[dict[str, Any]]:
    """The dicts evaluate() sees for the generated documents."""
    return [
        {"document_id": f"doc-{i}", "collection_id": c, **user, "_internal": internal}
        for i, (c, user, internal) in enumerate(docs)
    ]


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[Doc], list[dict[str, Any]]]:
    """Documents, and up to four filters whose values mostly come from those documents."""
    docs = draw(documents())
    pools = pools_of(as_docs(docs))
    return docs, [STORABLE.draw_filter(draw, pools) for _ in range(draw(st.integers(1, 4)))]


@st.composite
def single_conditions(draw: st.DrawFn) -> tuple[list[Doc], str, str, Any]:
    """Documents, a field, an operator and a value for it."""
    docs, field, op = draw(documents()), pick(draw, FIELDS), pick(draw, OPS)
    return docs, field, op, STORABLE.draw_value(draw, pools_of(as_docs(docs))[field], op)


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

# (filter, the indexes of EXAMPLE_DOCS it matches)
HAND_EXAMPLES: list[tuple[Any, set[int]]] = [
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
]
