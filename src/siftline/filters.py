"""Metadata filters in Mixpeek's ``LogicalOperator`` language: parse, bind dynamic inputs, evaluate.

A filter is JSON: ``{"AND": [...], "OR": [...], "NOT": [...], "case_sensitive": false}``. Each list
item is a nested operator object or a condition ``{"field": "metadata.year", "operator": "gte",
"value": 2020}`` (``operator`` defaults to ``eq``). Any other key of an operator object is the
shorthand ``{"<field>": value}`` for ``eq``; all parts of one object are ANDed. ``AND``/``OR``/``NOT``
set to ``null`` count as absent (what a serialized Mixpeek model sends), so do ``"operator": null``
(``eq``) and ``"case_sensitive": null`` (inherit). The keys ``field``, ``operator``, ``value`` and
``case_sensitive`` are reserved, so a shorthand can't name a user field called that.

This module is the reference semantics; ``storage/sqlite/filter_sql.py`` must agree with it exactly.

* ``AND``: every item true (empty: true). ``OR``: some item true (empty: false). ``NOT``: no item
  true, i.e. ``NOT(OR(items))`` (empty: true). ``case_sensitive`` (default false) covers the subtree
  of the object that sets it, until a nested object sets it again. At most 16 nested objects.
* Fields are dotted paths into the document dict (``document_id``, ``collection_id`` and user
  fields at the root, system fields under ``_internal``). Only objects are descended: a path
  through a list or a scalar is missing. ``get_path`` returns ``MISSING`` for it.
* A missing field fails every comparison except ``ne``/``nin`` (exactly ``NOT eq``/``NOT in``),
  ``is_null: true`` and ``exists: false``. ``exists: true`` ⇔ present and not null;
  ``is_null: true`` ⇔ absent or null; each ``false`` is the negation.
* Equality is JSON-type aware: numbers compare numerically (``1 == 1.0``), a bool never equals a
  number, strings compare by ``str.casefold`` unless case sensitive, ``null`` equals only ``null``.
  Lists and objects never equal a scalar value.
* List fields (Qdrant semantics): eq, in, gt/gte/lt/lte, starts_with, ends_with, regex and text are
  true when any *element* of the list satisfies them (elements are not descended further).
* gt/gte/lt/lte order number vs number, or string vs string (code-point order of the casefolded
  strings unless case sensitive, so ISO-8601 datetimes work). Other pairs are false; bools are
  never ordered.
* ``contains``: on a string field, the value (a string) is a substring; on a list field, some element
  equals the value. Any other field type is false.
* ``regex``: ``re.search``, with ``re.IGNORECASE`` unless case sensitive. The pattern is compiled when
  parsed. ``text``: case-insensitive substring on string fields whatever ``case_sensitive`` says.
* Values are checked per operator: eq/ne/contains take a scalar (string, finite number, bool or
  null), in/nin a list of scalars, gt/gte/lt/lte a number or a string, starts_with/ends_with/regex/
  text a string, exists/is_null a bool. Integers must fit in 64 bits, which SQLite needs.
* Field names: a non-empty string of non-empty dot-separated segments without control characters.
* Dynamic values ``{"type": "dynamic", "field": "inputs.x"}`` (also ``INPUT.x`` or plain ``x``)
  are resolved by ``bind``. An input that is absent or null *relaxes* its condition: the condition
  is dropped from its parent's list, and a parent whose items were all dropped this way is dropped
  too (so relaxing never turns an OR into "match nothing"; an OR that was empty to begin with still
  matches nothing). An And/Or left with one item becomes that item. A filter relaxed away entirely
  binds to None (no filter). ``bind`` returns the dropped conditions, in filter order.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeAlias

from siftline.errors import ValidationError

MAX_DEPTH: Final = 16
OPERATORS: Final = (
    "eq", "ne", "gt", "lt", "gte", "lte", "in", "nin", "contains",
    "starts_with", "ends_with", "regex", "exists", "is_null", "text",
)  # fmt: skip
_INT64: Final = 2**63
_CONDITION_KEYS: Final = frozenset({"field", "operator", "value", "case_sensitive"})
_LOGICAL_KEYS: Final = ("AND", "OR", "NOT")

Loc: TypeAlias = tuple[str | int, ...]
Scalar: TypeAlias = bool | int | float | str | None
Predicate: TypeAlias = Callable[[Mapping[str, Any]], bool]
_Test: TypeAlias = Callable[[Any], bool]


class _Missing:
    """Type of ``MISSING``: the value of a path that is not in the document."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


@dataclasses.dataclass(frozen=True, slots=True)
class Dynamic:
    """A value still to be read from the request inputs (``bind`` replaces it)."""

    path: str


@dataclasses.dataclass(frozen=True, slots=True)
class Condition:
    """One comparison. ``value`` is a scalar, a tuple of scalars (in/nin) or a ``Dynamic``.

    Every node builds its ``predicate`` once, when constructed, so evaluating many documents walks
    no tree and re-parses nothing. Pickling sends the fields and rebuilds the predicate.
    """

    field: str
    op: str
    value: Scalar | tuple[Scalar, ...] | Dynamic
    case_sensitive: bool = False
    predicate: Predicate = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "predicate", _condition_predicate(self))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return Condition, (self.field, self.op, self.value, self.case_sensitive)


class _Compound:
    """Base of And/Or/Not: pickles by its items (the predicate is rebuilt)."""

    __slots__ = ()
    items: tuple[Node, ...]

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return type(self), (self.items,)


@dataclasses.dataclass(frozen=True, slots=True)
class And(_Compound):
    """True when every item is true (an empty And is true)."""

    items: tuple[Node, ...]
    predicate: Predicate = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))
        object.__setattr__(self, "predicate", _all_of(tuple(i.predicate for i in self.items)))


@dataclasses.dataclass(frozen=True, slots=True)
class Or(_Compound):
    """True when at least one item is true (an empty Or is false)."""

    items: tuple[Node, ...]
    predicate: Predicate = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))
        object.__setattr__(self, "predicate", _any_of(tuple(i.predicate for i in self.items)))


@dataclasses.dataclass(frozen=True, slots=True)
class Not(_Compound):
    """True when no item is true: ``NOT(OR(items))`` (an empty Not is true)."""

    items: tuple[Node, ...]
    predicate: Predicate = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))
        any_true = _any_of(tuple(i.predicate for i in self.items))
        object.__setattr__(self, "predicate", lambda doc: not any_true(doc))


Node: TypeAlias = Condition | And | Or | Not


@dataclasses.dataclass(frozen=True, slots=True)
class RelaxedCondition:
    """A condition ``bind`` dropped because its dynamic input was absent."""

    field: str
    operator: str
    input_path: str

    def as_dict(self, where: str) -> dict[str, str]:
        """The relaxation as an execution record reports it; ``where`` names the filter it was in."""
        return {"field": self.field, "operator": self.operator, "input": self.input_path, "filter": where}


# ---------------------------------------------------------------------------------------------- public API


def parse_filter(obj: Any, loc: Sequence[str | int] = ("filters",)) -> Node | None:
    """Validate a JSON filter into a Node; ``None`` or ``{}`` means no filter."""
    if obj is None or (isinstance(obj, Mapping) and not obj):
        return None
    return _parse_node(obj, tuple(loc), 1, False)


def bind(node: Node | None, inputs: Mapping[str, Any]) -> tuple[Node | None, list[RelaxedCondition]]:
    """Replace dynamic values by the inputs; drop (relax) conditions whose input is absent."""
    relaxed: list[RelaxedCondition] = []
    return (None if node is None else _bind(node, inputs, relaxed)), relaxed


def evaluate(node: Node | None, doc: Mapping[str, Any]) -> bool:
    """The reference evaluator: does ``doc`` match? ``None`` matches everything."""
    return True if node is None else node.predicate(doc)


def matcher(node: Node | None) -> Predicate:
    """The compiled predicate of ``node``, for loops over many documents."""
    return (lambda doc: True) if node is None else node.predicate


def fields_of(node: Node | None) -> set[str]:
    """Every field the filter names (to warn about unindexed fields)."""
    if node is None:
        return set()
    if isinstance(node, Condition):
        return {node.field}
    return set().union(*(fields_of(i) for i in node.items))


def and_all(*nodes: Node | None) -> Node | None:
    """AND several optional filters together (``None`` when none is given)."""
    present = tuple(n for n in nodes if n is not None)
    if len(present) <= 1:
        return present[0] if present else None
    return And(present)


def get_path(doc: Any, dotted: str) -> Any:
    """The value at a dotted path, descending only mappings; ``MISSING`` when absent."""
    cur = doc
    for part in dotted.split("."):
        if not isinstance(cur, Mapping):
            return MISSING
        cur = cur.get(part, MISSING)
    return cur


def check_value(op: str, value: Any, loc: Loc) -> Scalar | tuple[Scalar, ...]:
    """Validate a (resolved) value for ``op``; lists become tuples. Raises ValidationError."""
    if op in ("in", "nin"):
        if not isinstance(value, list | tuple):
            raise ValidationError.at(loc, f"'{op}' needs a list of values, e.g. [1, 2]; got {_kind(value)}")
        return tuple(_check_scalar(v, (*loc, i), op) for i, v in enumerate(value))
    if op in ("exists", "is_null"):
        if not isinstance(value, bool):
            raise ValidationError.at(loc, f"'{op}' needs true or false; got {_kind(value)}")
        return value
    if op in ("gt", "gte", "lt", "lte"):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValidationError.at(loc, f"'{op}' compares a number or a string; got {_kind(value)}")
        return _check_scalar(value, loc, op)
    if op in ("starts_with", "ends_with", "regex", "text"):
        if not isinstance(value, str):
            raise ValidationError.at(loc, f"'{op}' needs a string value; got {_kind(value)}")
        if op == "regex":
            _compile_regex(value, False, loc)
        return value
    return _check_scalar(value, loc, op)


# ---------------------------------------------------------------------------------------------- parsing


def _parse_node(obj: Any, loc: Loc, depth: int, case_sensitive: bool) -> Node:
    """One object: a condition (has ``field``) or an operator object with shorthand keys."""
    if not isinstance(obj, Mapping):
        raise ValidationError.at(
            loc,
            f'expected a filter object ({{"field": .., "value": ..}} or {{"AND": [...]}}), got {_kind(obj)}',
        )
    if depth > MAX_DEPTH:
        raise ValidationError.at(
            loc, f"filters may nest at most {MAX_DEPTH} levels; flatten the AND/OR/NOT tree"
        )
    cs = _parse_case(obj, loc, case_sensitive)
    if "field" in obj:
        return _parse_condition(obj, loc, cs)
    parts: list[Node] = []
    for key, raw in obj.items():
        if key == "case_sensitive" or (key in _LOGICAL_KEYS and raw is None):
            continue
        if key in _LOGICAL_KEYS:
            items = _parse_items(raw, (*loc, key), depth, cs)
            if key == "AND" and items:
                parts.extend(items)  # flattened; an empty AND stays a (true) part of its own
            else:
                parts.append(And(items) if key == "AND" else Or(items) if key == "OR" else Not(items))
        elif key in ("operator", "value"):
            raise ValidationError.at(
                (*loc, "field"), f"a condition with '{key}' needs a 'field' (a dotted path)"
            )
        else:
            parts.append(_parse_shorthand(key, raw, (*loc, key), cs))
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _parse_items(raw: Any, loc: Loc, depth: int, cs: bool) -> tuple[Node, ...]:
    if not isinstance(raw, list | tuple):
        raise ValidationError.at(loc, f"'{loc[-1]}' needs a list of filter objects; got {_kind(raw)}")
    return tuple(_parse_node(item, (*loc, i), depth + 1, cs) for i, item in enumerate(raw))


def _parse_case(obj: Mapping[str, Any], loc: Loc, inherited: bool) -> bool:
    value = obj.get("case_sensitive")
    if value is None:
        return inherited
    if not isinstance(value, bool):
        raise ValidationError.at((*loc, "case_sensitive"), f"must be true or false; got {_kind(value)}")
    return value


def _parse_condition(obj: Mapping[str, Any], loc: Loc, cs: bool) -> Condition:
    for key in obj:
        if key not in _CONDITION_KEYS:
            raise ValidationError.at(
                (*loc, key),
                "a condition takes only field, operator, value and case_sensitive; put other "
                "fields in their own condition inside an AND list",
            )
    name = _parse_field(obj["field"], (*loc, "field"))
    op = _parse_operator(obj.get("operator"), (*loc, "operator"))
    if "value" not in obj:
        raise ValidationError.at((*loc, "value"), f"operator '{op}' needs a 'value'")
    return Condition(name, op, _parse_value(op, obj["value"], (*loc, "value")), cs)


def _parse_shorthand(key: Any, raw: Any, loc: Loc, cs: bool) -> Condition:
    """``{"<field>": value}``: eq on that field."""
    name = _parse_field(key, loc)
    if isinstance(raw, list | tuple):
        raise ValidationError.at(
            loc,
            f'the shorthand {{"{name}": value}} means eq and takes one value; for a list write '
            f'{{"field": "{name}", "operator": "in", "value": [...]}}',
        )
    return Condition(name, "eq", _parse_value("eq", raw, loc), cs)


def _parse_field(raw: Any, loc: Loc) -> str:
    if not isinstance(raw, str) or not raw:
        raise ValidationError.at(
            loc, f"a field must be a non-empty string such as 'metadata.year'; got {_kind(raw)}"
        )
    if any(not part for part in raw.split(".")):
        raise ValidationError.at(loc, f"field '{raw}' has an empty path segment; write e.g. 'metadata.year'")
    if any(ord(ch) < 32 for ch in raw):
        raise ValidationError.at(loc, f"field {raw!r} contains a control character")
    return raw


def _parse_operator(raw: Any, loc: Loc) -> str:
    if raw is None:
        return "eq"
    op = raw.lower() if isinstance(raw, str) else raw
    if op not in OPERATORS:
        raise ValidationError.at(loc, f"unknown operator {raw!r}; use one of {', '.join(OPERATORS)}")
    return str(op)


def _parse_value(op: str, raw: Any, loc: Loc) -> Scalar | tuple[Scalar, ...] | Dynamic:
    if not isinstance(raw, Mapping):
        return check_value(op, raw, loc)
    if raw.get("type") != "dynamic" or set(raw) != {"type", "field"}:
        raise ValidationError.at(
            loc, 'an object value must be a dynamic reference {"type": "dynamic", "field": "inputs.name"}'
        )
    path = raw["field"]
    if not isinstance(path, str) or not path.strip("."):
        raise ValidationError.at(
            (*loc, "field"), f"a dynamic value needs an input path like 'inputs.name'; got {_kind(path)}"
        )
    return Dynamic(path)


def _check_scalar(value: Any, loc: Loc, op: str) -> Scalar:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise ValidationError.at(loc, "integers must fit in 64 bits (between -2**63 and 2**63-1)")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError.at(loc, "numbers must be finite (no NaN or Infinity)")
        return value
    hint = "; use 'in' to match any of several values" if isinstance(value, list | tuple) else ""
    raise ValidationError.at(loc, f"'{op}' needs a string, number, boolean or null; got {_kind(value)}{hint}")


def _compile_regex(pattern: str, case_sensitive: bool, loc: Loc = ("filters",)) -> re.Pattern[str]:
    try:
        return re.compile(pattern, 0 if case_sensitive else re.IGNORECASE)
    except (re.error, OverflowError, RecursionError, ValueError) as exc:
        raise ValidationError.at(loc, f"invalid regular expression {pattern!r}: {exc}") from exc


def _kind(value: Any) -> str:
    names = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "a list", tuple: "a list", dict: "an object"}  # fmt: skip
    return names.get(type(value), "an object" if isinstance(value, Mapping) else type(value).__name__)


# ---------------------------------------------------------------------------------------------- binding


def _bind(node: Node, inputs: Mapping[str, Any], relaxed: list[RelaxedCondition]) -> Node | None:
    """The bound node, or None when relaxation dropped it."""
    if isinstance(node, Condition):
        return _bind_condition(node, inputs, relaxed)
    kept = [b for b in (_bind(i, inputs, relaxed) for i in node.items) if b is not None]
    if len(kept) == len(node.items):
        return node if all(k is i for k, i in zip(kept, node.items, strict=True)) else type(node)(tuple(kept))
    if not kept:
        return None
    return kept[0] if len(kept) == 1 and not isinstance(node, Not) else type(node)(tuple(kept))


def _bind_condition(
    cond: Condition, inputs: Mapping[str, Any], relaxed: list[RelaxedCondition]
) -> Condition | None:
    if not isinstance(cond.value, Dynamic):
        return cond
    parts = _input_parts(cond.value.path)
    value = get_path(inputs, ".".join(parts))
    if value is MISSING or value is None:
        relaxed.append(RelaxedCondition(cond.field, cond.op, cond.value.path))
        return None
    try:
        checked = check_value(cond.op, value, ("inputs", *parts))
    except ValidationError as exc:
        err = exc.errors[0]
        msg = f"input '{cond.value.path}' feeds the filter on '{cond.field}' ({cond.op}): {err['msg']}"
        raise ValidationError.at(err["loc"], msg) from exc
    return Condition(cond.field, cond.op, checked, cond.case_sensitive)


def _input_parts(path: str) -> tuple[str, ...]:
    parts = tuple(p for p in path.split(".") if p)
    if len(parts) > 1 and parts[0].lower() in ("inputs", "input"):
        return parts[1:]
    return parts


# ---------------------------------------------------------------------------------------------- evaluation


def _all_of(preds: tuple[Predicate, ...]) -> Predicate:
    if len(preds) == 1:
        return preds[0]

    def all_true(doc: Mapping[str, Any]) -> bool:
        for pred in preds:  # noqa: SIM110 - a plain loop is about twice as fast as all() over a generator
            if not pred(doc):
                return False
        return True

    return all_true


def _any_of(preds: tuple[Predicate, ...]) -> Predicate:
    if len(preds) == 1:
        return preds[0]

    def any_true(doc: Mapping[str, Any]) -> bool:
        for pred in preds:  # noqa: SIM110 - see all_true
            if pred(doc):
                return True
        return False

    return any_true


def _getter(name: str) -> Callable[[Mapping[str, Any]], Any]:
    """``get_path`` for one field, with the path split once."""
    parts = tuple(name.split("."))
    if len(parts) == 1:
        key = parts[0]
        return lambda doc: doc.get(key, MISSING)

    def get(doc: Mapping[str, Any]) -> Any:
        cur: Any = doc
        for part in parts:
            if type(cur) is not dict and not isinstance(cur, Mapping):  # the dict test is the fast path
                return MISSING
            cur = cur.get(part, MISSING)
        return cur

    return get


def _condition_predicate(cond: Condition) -> Predicate:
    if isinstance(cond.value, Dynamic):
        path = cond.value.path

        def unbound(doc: Mapping[str, Any]) -> bool:
            raise ValueError(
                f"filter on '{cond.field}' has an unbound dynamic value '{path}'; call bind() first"
            )

        return unbound
    get, test = _getter(cond.field), _field_test(cond.op, cond.value, cond.case_sensitive)
    return lambda doc: test(get(doc))


def _fold(case_sensitive: bool) -> Callable[[str], str]:
    return str if case_sensitive else str.casefold


def _is_num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _any_element(pred: _Test) -> _Test:
    """Lift a scalar test to a field value: a list matches when any element does."""
    return lambda v: any(map(pred, v)) if isinstance(v, list) else pred(v)


def _eq_test(value: Any, cs: bool) -> _Test:
    if value is None:
        return lambda x: x is None
    if isinstance(value, bool):
        return lambda x: x is value
    if _is_num(value):
        return lambda x: _is_num(x) and x == value
    fold = _fold(cs)
    folded = fold(value)
    return lambda x: isinstance(x, str) and fold(x) == folded


def _in_test(values: tuple[Scalar, ...], cs: bool) -> _Test:
    fold = _fold(cs)
    has_null = None in values
    bools = {v for v in values if isinstance(v, bool)}
    nums = {v for v in values if _is_num(v)}
    strs = {fold(v) for v in values if isinstance(v, str)}

    def test(x: Any) -> bool:
        if x is None or isinstance(x, bool):
            return has_null if x is None else x in bools
        if isinstance(x, int | float):
            return x in nums
        return isinstance(x, str) and fold(x) in strs

    return test


def _order_test(cmp: Callable[[Any, Any], bool], value: Any, cs: bool) -> _Test:
    if isinstance(value, str):
        fold = _fold(cs)
        folded = fold(value)
        return lambda x: isinstance(x, str) and cmp(fold(x), folded)
    return lambda x: _is_num(x) and cmp(x, value)


def _string_test(check: Callable[[str], bool], fold: Callable[[str], str]) -> _Test:
    return lambda x: isinstance(x, str) and check(fold(x))


def _contains_test(value: Any, cs: bool) -> _Test:
    eq, fold = _eq_test(value, cs), _fold(cs)
    needle = fold(value) if isinstance(value, str) else None

    def test(v: Any) -> bool:
        if isinstance(v, list):
            return any(map(eq, v))
        return needle is not None and isinstance(v, str) and needle in fold(v)

    return test


def _field_test(op: str, value: Any, cs: bool) -> _Test:
    """The test on the field's value (``MISSING`` when absent) for one operator."""
    if op in ("ne", "nin"):
        positive = _field_test("eq" if op == "ne" else "in", value, cs)
        return lambda v: not positive(v)
    if op == "exists":
        return lambda v: (v is not MISSING and v is not None) is value
    if op == "is_null":
        return lambda v: (v is MISSING or v is None) is value
    if op == "contains":
        return _contains_test(value, cs)
    return _any_element(_scalar_test(op, value, cs))


def _scalar_test(op: str, value: Any, cs: bool) -> _Test:
    fold = _fold(cs)
    ordering = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
    if op == "eq":
        return _eq_test(value, cs)
    if op == "in":
        return _in_test(value, cs)
    if op in ordering:
        return _order_test(ordering[op], value, cs)
    if op in ("starts_with", "ends_with"):
        affix = fold(value)
        if op == "starts_with":
            return _string_test(lambda s: s.startswith(affix), fold)
        return _string_test(lambda s: s.endswith(affix), fold)
    if op == "regex":
        search = _compile_regex(value, cs).search
        return _string_test(lambda s: search(s) is not None, str)
    if op == "text":
        needle = value.casefold()
        return _string_test(lambda s: needle in s, str.casefold)
    raise ValueError(f"unknown filter operator {op!r}")
