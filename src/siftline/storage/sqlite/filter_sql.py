"""Compile a bound filter (``siftline.filters``) into a SQLite WHERE fragment.

The fragment matches exactly the documents ``filters.evaluate`` matches; the Python evaluator is
the reference and the congruence is property-tested. It runs against

    documents(rowid INTEGER PRIMARY KEY, collection_id TEXT, document_id TEXT,
              payload TEXT /* JSON object of user fields */, internal TEXT /* JSON of _internal */, ...)

Fields: ``document_id`` and ``collection_id`` are those columns (a deeper path under them is always
missing); ``_internal.x.y`` is ``$."x"."y"`` in ``internal``; anything else is its quoted path in
``payload``. JSON paths and values are bound as ``?`` parameters.

How the semantics map onto SQLite:

* ``json_type`` tells JSON types apart ('true'/'false'/'integer'/'real'/'text'/'null'/'array'/
  'object', NULL when the path is absent), so a bool never equals a number and cross-type
  comparisons stay false even though ``json_extract`` returns booleans as 1/0.
* A list field is searched with ``json_each``; any other value is tested directly.
* Every condition is wrapped in ``coalesce(.., 0)`` so it is exactly 0 or 1: SQL's three-valued NULL
  never leaks into ``NOT``.
* Case folding and regular expressions call Python: **every connection that runs compiled filters
  must call** :func:`register_functions` first (``sl_fold`` = ``str.casefold`` on text,
  ``sl_regexp(pattern, flags, value)`` = ``re.search``).

:func:`json_path` gives the same field as a parameter-free SQL expression (e.g. for ORDER BY).

Limits of SQLite's JSON (3.40) that callers must respect: write ``payload``/``internal`` with
``json.dumps(..., ensure_ascii=False)``, or keys with non-ASCII characters are never found (SQLite
compares path labels to the raw, still-escaped key text); keys containing ``"``, ``\\`` or NUL
can't be addressed (compiling such a field raises ValidationError); string values containing NUL
and integers beyond 64 bits don't compare like in Python.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeAlias

from siftline.errors import ValidationError
from siftline.filters import And, Condition, Dynamic, Node, Not, Or

_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ORDER_SQL = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


@dataclass(frozen=True, slots=True)
class Frag:
    """A piece of SQL and the values of its ``?`` placeholders, in order."""

    sql: str
    params: tuple[Any, ...] = ()


TRUE, FALSE = Frag("1"), Frag("0")
_Pred: TypeAlias = Callable[[Frag, Frag], Frag]  # (json type, value) -> 0/1/NULL


def q(template: str, *args: Any) -> Frag:
    """Fill each ``{}``: a Frag is spliced in with its params; any other value becomes a ``?``."""
    pieces = template.split("{}")
    if len(pieces) != len(args) + 1:
        raise ValueError(f"template {template!r} has {len(pieces) - 1} slots for {len(args)} arguments")
    sql: list[str] = [pieces[0]]
    params: list[Any] = []
    for arg, piece in zip(args, pieces[1:], strict=True):
        if isinstance(arg, Frag):
            sql.append(arg.sql)
            params.extend(arg.params)
        else:
            sql.append("?")
            params.append(arg)
        sql.append(piece)
    return Frag("".join(sql), tuple(params))


def _join(frags: Iterable[Frag], sep: str, empty: Frag) -> Frag:
    parts = list(frags)
    if not parts:
        return empty
    return Frag("(" + sep.join(f.sql for f in parts) + ")", tuple(p for f in parts for p in f.params))


# ---------------------------------------------------------------------------------------------- public API


def compile_filter(node: Node | None, table_alias: str = "") -> tuple[str, list[Any]]:
    """A WHERE fragment and its parameters; ``("1", [])`` for no filter. ``node`` must be bound."""
    if node is None:
        return "1", []
    frag = _compile(node, _prefix(table_alias))
    return frag.sql, list(frag.params)


def json_path(
    field: str, table_alias: str = "", loc: tuple[str | int, ...] = ("body", "sort", "field")
) -> str:
    """A self-contained SQL expression (no parameters) for a field's value, e.g. for ORDER BY."""
    located = _locate(field, _prefix(table_alias), loc)
    if located is None:
        return "NULL"
    column, path = located
    if path is None:
        return column
    literal = "'" + path.replace("'", "''") + "'"
    return f"json_extract({column}, {literal})"


def _prefix(table_alias: str) -> str:
    if table_alias and not _ALIAS.fullmatch(table_alias):
        raise ValueError(f"table alias {table_alias!r} is not a plain SQL identifier")
    return f"{table_alias}." if table_alias else ""


def register_functions(conn: sqlite3.Connection) -> None:
    """Register ``sl_fold`` and ``sl_regexp``, which compiled filters call, on ``conn``."""
    conn.create_function("sl_fold", 1, _sl_fold, deterministic=True)
    conn.create_function("sl_regexp", 3, _sl_regexp, deterministic=True)


def _sl_fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


@lru_cache(maxsize=512)
def _regex(pattern: str, flags: int) -> re.Pattern[str]:
    return re.compile(pattern, flags)


def _sl_regexp(pattern: Any, flags: Any, value: Any) -> int:
    if not isinstance(value, str) or not isinstance(pattern, str):
        return 0
    return int(_regex(pattern, int(flags)).search(value) is not None)


# ---------------------------------------------------------------------------------------------- fields


@dataclass(frozen=True, slots=True)
class _Field:
    """How to read a field: its JSON type, its SQL value, and (JSON only) its ``json_each`` source."""

    type: Frag
    value: Frag
    each: Frag | None


def _locate(name: str, prefix: str, loc: tuple[str | int, ...]) -> tuple[str, str | None] | None:
    """(column, JSON path) of a dotted field, path None for a plain column; None if never present."""
    head, *rest = name.split(".")
    if head in ("document_id", "collection_id"):
        return None if rest else (prefix + head, None)
    column, segments = (
        (prefix + "internal", rest) if head == "_internal" else (prefix + "payload", [head, *rest])
    )
    if any(ch in s for s in segments for ch in '"\\\0'):
        raise ValidationError.at(
            loc, f"field {name!r}: names containing '\"', '\\' or NUL can't be used here"
        )
    return column, "$" + "".join(f'."{s}"' for s in segments)


def _field(name: str, prefix: str) -> _Field | None:
    """The SQL accessors of a dotted field; None when it can never be present."""
    located = _locate(name, prefix, ("filters",))
    if located is None:
        return None
    column, path = located
    if path is None:
        return _Field(Frag(f"iif({column} IS NULL, 'null', 'text')"), Frag(column), None)
    source = Frag(column)
    return _Field(q("json_type({}, {})", source, path), q("json_extract({}, {})", source, path),
                  q("json_each({}, {})", source, path))  # fmt: skip


def _lifted(fld: _Field | None, element: _Pred, scalar: _Pred | None = None) -> Frag:
    """``element`` on any element of a list field, else ``scalar`` (default ``element``) on the value."""
    if fld is None:
        return FALSE
    direct = (scalar or element)(fld.type, fld.value)
    if fld.each is None:
        return q("coalesce({}, 0)", direct)
    inner = element(Frag("je.type"), Frag("je.value"))
    return q(
        "coalesce(CASE {} WHEN 'array' THEN EXISTS (SELECT 1 FROM {} AS je WHERE {}) ELSE {} END, 0)",
        fld.type, fld.each, inner, direct,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- compiling


def _compile(node: Node, prefix: str) -> Frag:
    if isinstance(node, Condition):
        return _condition(node, prefix)
    parts = (_compile(i, prefix) for i in node.items)
    if isinstance(node, And):
        return _join(parts, " AND ", TRUE)
    if isinstance(node, Or):
        return _join(parts, " OR ", FALSE)
    if isinstance(node, Not):
        return q("(NOT {})", _join(parts, " OR ", FALSE))
    raise TypeError(f"not a filter node: {node!r}")


def _condition(cond: Condition, prefix: str) -> Frag:
    op, value, cs = cond.op, cond.value, cond.case_sensitive
    if isinstance(value, Dynamic):
        raise ValueError(f"filter on '{cond.field}' has an unbound dynamic value; call bind() first")
    fld = _field(cond.field, prefix)
    if op in ("ne", "nin"):
        return q(
            "(NOT {})", _condition(Condition(cond.field, op[1:] if op == "nin" else "eq", value, cs), prefix)
        )
    if op in ("exists", "is_null"):
        present = FALSE if fld is None else q("(coalesce({}, 'null') <> 'null')", fld.type)
        return present if (op == "exists") is value else q("(NOT {})", present)
    if op == "contains":
        return _lifted(
            fld, _eq(value, cs), _substring(value, cs) if isinstance(value, str) else lambda t, v: FALSE
        )
    return _lifted(fld, _scalar_pred(op, value, cs))


def _scalar_pred(op: str, value: Any, cs: bool) -> _Pred:
    if op == "eq":
        return _eq(value, cs)
    if op == "in":
        return _in(value, cs)
    if op in _ORDER_SQL:
        return _order(_ORDER_SQL[op], value, cs)
    if op == "starts_with":
        return _affix(value, cs, at_start=True)
    if op == "ends_with":
        return _affix(value, cs, at_start=False)
    if op == "regex":
        return lambda t, v: q(
            "({} = 'text' AND sl_regexp({}, {}, {}))", t, value, 0 if cs else re.IGNORECASE, v
        )
    if op == "text":
        return _substring(value, False)
    raise ValueError(f"unknown filter operator {op!r}")


def _folded(v: Frag, cs: bool) -> Frag:
    return v if cs else q("sl_fold({})", v)


def _eq(value: Any, cs: bool) -> _Pred:
    if value is None or isinstance(value, bool):
        name = {None: "null", True: "true", False: "false"}[value]
        return lambda t, v: q(f"({{}} = '{name}')", t)
    if isinstance(value, str):
        key = value if cs else value.casefold()
        return lambda t, v: q("({} = 'text' AND {} = {})", t, _folded(v, cs), key)
    return lambda t, v: q("({} IN ('integer', 'real') AND {} = {})", t, v, value)


def _in(values: tuple[Any, ...], cs: bool) -> _Pred:
    nums = [x for x in values if isinstance(x, int | float) and not isinstance(x, bool)]
    strs = sorted({x if cs else x.casefold() for x in values if isinstance(x, str)})
    names = [n for n, x in (("null", None), ("true", True), ("false", False)) if any(y is x for y in values)]

    def pred(t: Frag, v: Frag) -> Frag:
        parts = [q(f"({{}} = '{n}')", t) for n in names]
        if nums:
            parts.append(
                q(
                    "({} IN ('integer', 'real') AND {} IN (" + ", ".join(["{}"] * len(nums)) + "))",
                    t,
                    v,
                    *nums,
                )
            )
        if strs:
            parts.append(
                q("({} = 'text' AND {} IN (" + ", ".join(["{}"] * len(strs)) + "))", t, _folded(v, cs), *strs)
            )
        return _join(parts, " OR ", FALSE)

    return pred


def _order(sql_op: str, value: Any, cs: bool) -> _Pred:
    if isinstance(value, str):
        key = value if cs else value.casefold()
        return lambda t, v: q(f"({{}} = 'text' AND {{}} {sql_op} {{}})", t, _folded(v, cs), key)
    return lambda t, v: q(f"({{}} IN ('integer', 'real') AND {{}} {sql_op} {{}})", t, v, value)


def _substring(value: str, cs: bool) -> _Pred:
    needle = value if cs else value.casefold()
    return lambda t, v: q("({} = 'text' AND instr({}, {}) > 0)", t, _folded(v, cs), needle)


def _affix(value: str, cs: bool, at_start: bool) -> _Pred:
    """starts_with / ends_with, by comparing a ``substr`` of the (folded) text to the affix."""
    affix = value if cs else value.casefold()
    if not affix:
        return lambda t, v: q("({} = 'text')", t)
    if at_start:
        return lambda t, v: q(
            "({} = 'text' AND substr({}, 1, {}) = {})", t, _folded(v, cs), len(affix), affix
        )
    return lambda t, v: q("({} = 'text' AND substr({}, {}) = {})", t, _folded(v, cs), -len(affix), affix)


# ---------------------------------------------------------------------------------------------- index hints


def index_expression(field: str, table_alias: str = "") -> str | None:
    """The expression a payload index on ``field`` is built on (paths inlined, as SQLite needs to
    match a query's expression to an index's); None for fields that are not payload paths."""
    located = _locate(field, _prefix(table_alias), ("payload_indexes",))
    if located is None:
        return None
    column, path = located
    if path is None or not column.endswith("payload"):
        return None
    return f"json_extract({column}, '{path.replace(chr(39), chr(39) * 2)}')"


def fold_expression(field: str, table_alias: str = "") -> str | None:
    """The expression of a payload index on ``field``'s case-folded text (keyword and text indexes:
    the filter language compares strings without regard to case unless told otherwise)."""
    expr = index_expression(field, table_alias)
    return None if expr is None else f"sl_fold({expr})"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _hint(cond: Condition, prefix: str, folded: bool, bools: bool = True) -> tuple[Frag, bool] | None:
    """A condition an index can answer that keeps every document ``cond`` matches, and whether it keeps
    exactly those (on a single-valued field). ``folded``: the field also has a case-folded index.

    ``json_extract`` gives JSON numbers and strings as SQL integers, reals and text, which compare like
    the evaluator compares them (``7 = 7.0``; a number never equals text) — but JSON ``true`` and
    ``false`` come out as 1 and 0, so a number 0 or 1 stays a superset; a range on a number is exact
    with ``< ''`` beside a lower bound (text sorts above every number in SQLite), and with the
    evaluator's type test when the field's ranges let 0 or 1 through (``bools``)."""
    value = cond.value
    scalars = value if isinstance(value, tuple) else (value,)
    if not scalars or cond.op not in ("eq", "in", *_ORDER_SQL):
        return None
    if any(isinstance(v, bool) or v is None for v in scalars):
        return None
    alias = prefix.rstrip(".")
    expr = index_expression(cond.field, alias)
    if expr is None:
        return None
    strings = [v for v in scalars if isinstance(v, str)]
    if strings:
        if cond.op in _ORDER_SQL or len(strings) != len(scalars):
            return None  # text order (collation) and mixed lists stay with the full condition
        if not cond.case_sensitive:
            fold = fold_expression(cond.field, alias)
            if not folded or fold is None:
                return None
            keys = tuple(v.casefold() for v in strings)
            return Frag(f"{fold} IN ({','.join('?' * len(keys))})", keys), True
        return Frag(f"{expr} IN ({','.join('?' * len(strings))})", tuple(strings)), True
    exact = not any(v in (0, 1) for v in scalars)  # true and false are 1 and 0 to SQLite
    if cond.op == "eq":
        return q(f"{expr} = {{}}", scalars[0]), exact
    if cond.op == "in":
        return Frag(f"{expr} IN ({','.join('?' * len(scalars))})", tuple(scalars)), exact
    located = _locate(cond.field, prefix, ("filters",))
    column, path = located if located is not None else ("", None)
    if path is None:
        return None
    bound = scalars[0]
    if not _number(bound):
        return None
    terms = [f"{expr} {_ORDER_SQL[cond.op]} ?"]
    if cond.op in ("gt", "gte"):  # text sorts above every number in SQLite and '' below every text
        terms.append(f"{expr} < ''")
    if bools:  # JSON true and false come out as 1 and 0: only the type tells them from numbers
        terms.append(f"json_type({column}, '{path.replace(chr(39), chr(39) * 2)}') IN ('integer', 'real')")
    return Frag(" AND ".join(terms), (bound,)), True


def _range_reaches_bools(items: Sequence[Node], field: str) -> bool:
    """Whether the number ranges AND-ed on ``field`` let 0 or 1 through (the values JSON booleans take in
    SQLite), so a range hint on it needs the type test beside it."""
    ranges = [
        (c.op, float(c.value))  # type: ignore[arg-type]  # _number checked it
        for c in items
        if isinstance(c, Condition) and c.field == field and c.op in _ORDER_SQL and _number(c.value)
    ]

    def passes(x: float) -> bool:
        return all({"gt": x > v, "gte": x >= v, "lt": x < v, "lte": x <= v}[op] for op, v in ranges)

    return passes(0.0) or passes(1.0)


def index_hint(
    node: Node | None, fields: Iterable[str], table_alias: str = "", folded: Iterable[str] = ()
) -> tuple[str, list[Any], bool]:
    """Extra WHERE terms over payload-indexed ``fields`` that let SQLite use their indexes, and whether
    they alone select exactly what ``node`` does (then the full filter need not run per row).
    ``folded``: those of ``fields`` that also have a case-folded index (:func:`fold_expression`).

    Each term is implied by the filter (a superset of its matches), so ``hint AND filter`` selects
    exactly what ``filter`` does. Only top-level AND-ed conditions on single-valued indexed fields
    qualify: ``fields`` must exclude any field that holds a list or object in some document, since a
    list field matches by element and ``json_extract`` of a list is its JSON text.
    """
    usable, with_fold = set(fields), set(folded)
    if node is None or not usable:
        return "1", [], False
    items = node.items if isinstance(node, And) else (node,)
    prefix = _prefix(table_alias)
    hints, exact = [], bool(items)
    for item in items:
        found = (
            _hint(item, prefix, item.field in with_fold, _range_reaches_bools(items, item.field))
            if isinstance(item, Condition) and item.field in usable
            else None
        )
        if found is None:
            exact = False
        else:
            hints.append(found[0])
            exact = exact and found[1]
    frag = _join(hints, " AND ", TRUE)
    return frag.sql, list(frag.params), exact
