"""Compile a bound filter (``siftline.filters``) into a PostgreSQL WHERE fragment.

The fragment matches exactly the documents ``filters.evaluate`` matches (the Python evaluator is the
reference; the congruence is property-tested in ``tests/postgres/test_postgres_filters.py``), against

    documents(collection_id text, document_id text,
              payload jsonb  /* user fields, floats as exact decimals: jsonvalues.exact_json */,
              internal jsonb /* _internal, the same way */,
              folded jsonb   /* {"p": payload, "i": internal, "d": document_id, "c": collection_id},
                                every string case-folded by Python: jsonvalues.folded */)

How the semantics map onto PostgreSQL:

* A path descends objects only (a list or a scalar on the way makes the field missing): each prefix
  of the path is tested to be an ``object`` before ``#>`` reads it.
* ``jsonb_typeof`` tells the JSON types apart; values are read inside ``CASE`` on the type, so a cast
  never meets a value of another type (PostgreSQL does not promise left-to-right ``AND``).
* Numbers compare as ``numeric``: stored floats are exact decimals and filter values are passed as
  exact ``Decimal`` s, so ``1 = 1.0`` and every int/float comparison is Python's.
* Strings compare with ``COLLATE "C"`` (code-point order, as Python); case-insensitive conditions read
  the case-folded copy and compare with the value case-folded by Python.
* A list field matches when some element does (``jsonb_array_elements``), its folded element read at the
  same position of the folded copy.
* Every condition is wrapped in ``coalesce(.., false)``, so SQL's NULL never leaks into ``NOT``.
* ``regex`` follows Python's ``re``, which PostgreSQL's regular expressions do not: a filter with a regex
  compiles to a *superset* (each regex condition taken as possibly true or false, whichever keeps more
  rows: :class:`Compiled` says ``exact=False``), and the caller checks the rows with ``filters.evaluate``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeAlias

from siftline.filters import And, Condition, Dynamic, Node, Not, Or

_ORDER_SQL = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class Frag:
    """A piece of SQL and the values of its ``%s`` placeholders, in order."""

    sql: str
    params: tuple[Any, ...] = ()


TRUE, FALSE = Frag("true"), Frag("false")


def q(template: str, *args: Any) -> Frag:
    """Fill each ``{}``: a Frag is spliced in with its params; any other value becomes a ``%s``."""
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
            sql.append("%s")
            params.append(arg)
        sql.append(piece)
    return Frag("".join(sql), tuple(params))


def _join(frags: Iterable[Frag], sep: str, empty: Frag) -> Frag:
    parts = list(frags)
    if not parts:
        return empty
    return Frag("(" + sep.join(f.sql for f in parts) + ")", tuple(p for f in parts for p in f.params))


def _number(value: Any) -> Decimal:
    return Decimal(value)  # exact for int and float alike


@dataclass(frozen=True, slots=True)
class Compiled:
    """``sql`` selects exactly the filter's documents when ``exact``; otherwise a superset of them, to be
    checked row by row with ``filters.evaluate``."""

    sql: str
    params: list[Any]
    exact: bool


def compile_filter(node: Node | None, table_alias: str = "") -> Compiled:
    """The WHERE fragment of a bound filter (``true`` for none)."""
    if node is None:
        return Compiled("true", [], True)
    if table_alias and not _ALIAS.fullmatch(table_alias):
        raise ValueError(f"table alias {table_alias!r} is not a plain SQL identifier")
    prefix = f"{table_alias}." if table_alias else ""
    exact = not _has_regex(node)
    frag = _compile(node, prefix, "possible")
    return Compiled(frag.sql, list(frag.params), exact)


def _has_regex(node: Node) -> bool:
    if isinstance(node, Condition):
        return node.op == "regex"
    return any(_has_regex(i) for i in node.items)


# ---------------------------------------------------------------------------------------------- fields


@dataclass(frozen=True, slots=True)
class _Value:
    """How to read one JSON value (a field, or an element of a list field)."""

    type: Frag  # jsonb_typeof: 'string' | 'number' | 'boolean' | 'null' | 'array' | 'object' | NULL
    json: Frag  # the jsonb value
    folded: Frag  # the jsonb value in the folded copy

    def text(self, fold: bool) -> Frag:
        return q(
            "CASE WHEN {} = 'string' THEN ({} #>> ARRAY[]::text[]) END",
            self.type,
            self.folded if fold else self.json,
        )

    def num(self) -> Frag:
        return q("CASE WHEN {} = 'number' THEN ({} #>> ARRAY[]::text[])::numeric END", self.type, self.json)


def path_value(column: Frag, segments: list[str]) -> Frag:
    """``column #> segments``, NULL unless every prefix on the way is an object."""
    if not segments:
        return column
    checks = [q("jsonb_typeof({} #> {}) = 'object'", column, segments[:i]) for i in range(1, len(segments))]
    read = q("({} #> {})", column, segments)
    if not checks:
        return read
    return q("(CASE WHEN {} THEN {} END)", _join(checks, " AND ", TRUE), read)


def _field(name: str, prefix: str) -> _Value | None:
    """The accessors of a dotted field; None when it can never be present."""
    head, *rest = name.split(".")
    if head in ("document_id", "collection_id"):
        if rest:
            return None
        column = Frag(prefix + head)
        key = "d" if head == "document_id" else "c"
        return _Value(Frag("'string'"), q("to_jsonb({})", column), Frag(f"({prefix}folded -> '{key}')"))
    if head == "_internal":
        column, folded, segments = Frag(prefix + "internal"), Frag(f"({prefix}folded -> 'i')"), rest
    else:
        column, folded, segments = Frag(prefix + "payload"), Frag(f"({prefix}folded -> 'p')"), [head, *rest]
    value = path_value(column, segments)
    return _Value(q("jsonb_typeof({})", value), value, path_value(folded, segments))


_Pred: TypeAlias = Callable[[_Value], Frag]  # a JSON value -> true/false/NULL


def _lifted(fld: _Value | None, element: _Pred, scalar: _Pred | None = None) -> Frag:
    """``element`` on some element of a list field, else ``scalar`` (default ``element``) on the value."""
    if fld is None:
        return FALSE
    direct = (scalar or element)(fld)
    each = _Value(Frag("jsonb_typeof(je.v)"), Frag("je.v"), q("({} -> (je.n::int - 1))", fld.folded))
    inner = element(each)
    return q(
        "coalesce(CASE WHEN {} = 'array' THEN EXISTS (SELECT 1 FROM jsonb_array_elements({}) "
        "WITH ORDINALITY AS je(v, n) WHERE {}) ELSE {} END, false)",
        fld.type, fld.json, inner, direct,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- compiling


def _compile(node: Node, prefix: str, want: str) -> Frag:
    """SQL for ``node``; a regex condition is taken as true when ``want`` is 'possible' (a superset of
    the matches) and false when it is 'certain' (a subset) — NOT swaps the two."""
    if isinstance(node, Condition):
        if node.op == "regex":
            return TRUE if want == "possible" else FALSE
        return _condition(node, prefix, want)
    if isinstance(node, And):
        return _join((_compile(i, prefix, want) for i in node.items), " AND ", TRUE)
    if isinstance(node, Or):
        return _join((_compile(i, prefix, want) for i in node.items), " OR ", FALSE)
    if isinstance(node, Not):
        other = "certain" if want == "possible" else "possible"
        return q("(NOT {})", _join((_compile(i, prefix, other) for i in node.items), " OR ", FALSE))
    raise TypeError(f"not a filter node: {node!r}")


def _condition(cond: Condition, prefix: str, want: str) -> Frag:
    op, value, cs = cond.op, cond.value, cond.case_sensitive
    if isinstance(value, Dynamic):
        raise ValueError(f"filter on '{cond.field}' has an unbound dynamic value; call bind() first")
    fld = _field(cond.field, prefix)
    if op in ("ne", "nin"):
        positive = Condition(cond.field, op[1:] if op == "nin" else "eq", value, cs)
        return q("(NOT {})", _condition(positive, prefix, want))
    if op in ("exists", "is_null"):
        present = FALSE if fld is None else q("(coalesce({}, 'null') <> 'null')", fld.type)
        return present if (op == "exists") is value else q("(NOT {})", present)
    if op == "contains":
        on_string = _substring(value, cs) if isinstance(value, str) else (lambda v: FALSE)
        return _lifted(fld, _eq(value, cs), on_string)
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
    if op == "text":
        return _substring(value, False)
    raise ValueError(f"unknown filter operator {op!r}")


def _key(value: str, cs: bool) -> str:
    return value if cs else value.casefold()


def _eq(value: Any, cs: bool) -> _Pred:
    if value is None:
        return lambda v: q("({} = 'null')", v.type)
    if isinstance(value, bool):
        literal = "true" if value else "false"
        return lambda v: q(f"({{}} = 'boolean' AND {{}} = '{literal}'::jsonb)", v.type, v.json)
    if isinstance(value, str):
        return lambda v: q('({} COLLATE "C" = {})', v.text(not cs), _key(value, cs))
    return lambda v: q("({} = {})", v.num(), _number(value))


def _in(values: tuple[Any, ...], cs: bool) -> _Pred:
    preds = [_eq(x, cs) for x in values]
    return lambda v: _join((p(v) for p in preds), " OR ", FALSE)


def _order(sql_op: str, value: Any, cs: bool) -> _Pred:
    if isinstance(value, str):
        return lambda v: q(f'({{}} COLLATE "C" {sql_op} {{}} COLLATE "C")', v.text(not cs), _key(value, cs))
    return lambda v: q(f"({{}} {sql_op} {{}})", v.num(), _number(value))


def _substring(value: str, cs: bool) -> _Pred:
    return lambda v: q("(strpos({}, {}) > 0)", v.text(not cs), _key(value, cs))


def _affix(value: str, cs: bool, at_start: bool) -> _Pred:
    affix = _key(value, cs)
    if not affix:
        return lambda v: q("({} = 'string')", v.type)
    side = "left" if at_start else "right"
    return lambda v: q(f'({side}({{}}, {{}}) COLLATE "C" = {{}})', v.text(not cs), len(affix), affix)
