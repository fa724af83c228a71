"""Jinja2 templates in stage parameters: detect them, check them, list the inputs they read, render them.

A stage parameter may be a string holding Jinja2 over these names (each with a lower-case alias):

* ``INPUT`` / ``inputs``: the execution's inputs (``{}`` when the context has none);
* ``DOC`` / ``doc``: the document at hand, for stages that render per document;
* ``CONTEXT`` / ``context``: ``budget_remaining`` and ``time_elapsed_ms``;
* ``STAGE`` / ``stage``: earlier stages' outputs by stage name.

Rendering rules (``render``):

* A string that is exactly one expression, ``"{{ INPUT.tags }}"`` (surrounding whitespace and
  comments allowed), evaluates to the expression's *native* value: a list stays a list, a number a
  number. Anything else that is a template renders to a string. Other values pass through unchanged.
* Values are JSON data: a native result is copied into plain dicts/lists (so rendering never hands
  out the caller's inputs), iterators such as ``map(...)`` results become lists, and a value that is
  not JSON data (a function, a Jinja helper object) is an error. In text, a missing value or ``None``
  prints as ``""``; other values print as Jinja prints them (``| tojson`` gives JSON).
* Missing things are lenient, ``None``-ish things are not: a missing input, key or attribute (also
  chained, ``INPUT.a.b.c``) is undefined, which evaluates to ``None``, prints as ``""`` and works
  with ``| default(...)``. Reading an attribute or item *of None* (``INPUT.x.y`` where ``x`` is
  null) is an error, as is any other failure (syntax, a security violation, ``1 / 0`` ...). Errors
  raise a 422 ``ValidationError`` at the string's location naming the template and the problem.
* On a mapping, ``x.name`` reads the key ``name`` before any method of that name, so inputs called
  ``items`` or ``values`` work.

Security: rendering uses Jinja2's ``ImmutableSandboxedEnvironment``: no attribute starting with
``_`` (so no ``__class__``/``__globals__`` escapes), no unsafe ``str.format``, no method that mutates
a list, dict or set (so templates cannot change the inputs), no loader (so no ``include``/``import``
and no file access). On top of that, sequence repetition (``'a' * n``) and integer powers are
bounded, and ``range`` is limited to 100 000 items by the sandbox. Templates come from the
retriever's author; the inputs are only ever data, never compiled as templates.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Iterator, Mapping, MappingView, Sequence
from collections.abc import Set as AbstractSet
from functools import lru_cache
from numbers import Number
from typing import Any, Final, cast

from jinja2 import ChainableUndefined, Template, TemplateError, TemplateSyntaxError, Undefined, nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError, TemplateRuntimeError, UndefinedError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from siftline.errors import ValidationError

Loc = Sequence[str | int]

ALIASES: Final = {"INPUT": "inputs", "DOC": "doc", "CONTEXT": "context", "STAGE": "stage"}
INPUT_NAMES: Final = frozenset({"INPUT", "inputs"})
MAX_REPEAT: Final = 100_000  # longest string/list that `seq * n` may build
MAX_POWER_BITS: Final = 4_096  # largest integer (in bits) that `a ** b` may build
_EXCERPT: Final = 120  # characters of a template quoted in an error message
# Iterables a native value may be, copied into a list (never a Jinja loop or other stateful iterator).
_LISTABLE: Final[tuple[type, ...]] = (
    list, tuple, range, AbstractSet, MappingView, types.GeneratorType, map, filter, zip, reversed,
    type(reversed([])), type(iter([])),
)  # fmt: skip


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus: keys before methods, errors on None and unsafe access, size limits."""

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        if obj is None:
            raise UndefinedError(f"cannot read attribute {attribute!r} of None")
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if obj is None:
            raise UndefinedError(f"cannot read item {argument!r} of None")
        return super().getitem(obj, argument)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        """Fail at once (the sandbox's default is an undefined that fails only when used)."""
        raise SecurityError(f"access to attribute {attribute!r} of a {type(obj).__name__!r} object is unsafe")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check_size(operator, left, right)
        return super().call_binop(context, operator, left, right)


def _check_size(operator: str, left: Any, right: Any) -> None:
    """Refuse ``seq * n`` and ``a ** b`` whose result would be huge (memory/CPU exhaustion)."""
    if operator == "*" and max(_repeat_length(left, right), _repeat_length(right, left)) > MAX_REPEAT:
        raise SecurityError(f"'*' would build a sequence longer than {MAX_REPEAT} items")
    if operator == "**" and _power_bits(left, right) > MAX_POWER_BITS:
        raise SecurityError(f"'**' would build a number larger than {MAX_POWER_BITS} bits")


def _repeat_length(seq: Any, times: Any) -> int:
    """Length of ``seq * times`` for a sequence and an int, else 0."""
    if isinstance(seq, str | list | tuple) and isinstance(times, int):
        return len(seq) * times
    return 0


def _power_bits(base: Any, exponent: Any) -> int:
    """About how many bits ``base ** exponent`` has, for ints (0 for anything else or |base| <= 1)."""
    if isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1:
        return exponent * abs(base).bit_length()
    return 0


def _finalize(value: Any) -> Any:
    """What an expression prints in text: its JSON value, with None (or missing) as ''."""
    value = _native(value)
    return "" if value is None else value


_ENV: Final = _Sandbox(
    undefined=ChainableUndefined,
    autoescape=False,
    finalize=_finalize,
    extensions=["jinja2.ext.loopcontrols"],
)


def is_template(value: Any) -> bool:
    """A string holding Jinja2 markup (``{{`` or ``{%``); only such strings are rendered."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def template_strings(value: Any) -> Iterator[str]:
    """Every template string inside ``value`` (through dicts and lists; a list of numbers, such as a query
    vector, is passed over in one step)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from template_strings(item)
    elif isinstance(value, list):
        if not _plain_list(value):
            for item in value:
                yield from template_strings(item)
    elif is_template(value):
        yield value


def render(value: Any, context: Mapping[str, Any], loc: Loc = ("parameters",)) -> Any:
    """Render every template string in ``value`` (recursively through dicts and lists; keys are kept).

    ``context`` maps the template names (``INPUT``, ``DOC``, ``CONTEXT``, ``STAGE`` or their
    aliases) to values. See the module docstring for native values and errors; ``loc`` is the
    location of ``value``, extended by keys and indexes for nested values.
    """
    return _render(value, _variables(context), tuple(loc))


def referenced_inputs(value: Any) -> set[str]:
    """The top-level inputs the templates in ``value`` read (``INPUT.x``, ``inputs['x']``, ``INPUT.get('x')``).

    Used at retriever creation to reject templates naming undeclared inputs. Found syntactically, so
    dynamic reads (``INPUT[name]``, ``{% set i = INPUT %}{{ i.x }}``) are not seen. Templates that do
    not parse are skipped (``check_syntax`` reports them).
    """
    return {name for source, _ in _templates(value, ()) for name in _inputs_read(source)}


def check_syntax(value: Any, loc: Loc = ("parameters",)) -> None:
    """Raise a ValidationError at the location of the first template in ``value`` that does not parse."""
    for source, where in _templates(value, tuple(loc)):
        try:
            _compile(source)
        except TemplateSyntaxError as exc:
            raise _error(source, where, exc) from exc


# -- rendering ----------------------------------------------------------------------------------


def _variables(context: Mapping[str, Any]) -> dict[str, Any]:
    """The context with every name reachable under both spellings; INPUT defaults to ``{}``."""
    out = dict(context)
    for name, alias in ALIASES.items():
        if name in out or alias in out:
            value = out[name] if name in out else out[alias]
            out.setdefault(name, value)
            out.setdefault(alias, value)
    if "INPUT" not in out:
        out["INPUT"] = out["inputs"] = {}
    return out


_SCALARS = frozenset({int, float, bool, type(None)})


def _plain_list(value: list[Any]) -> bool:
    """A list of numbers (a query vector): nothing in it can be a template."""
    return set(map(type, value)) <= _SCALARS


def _render(value: Any, variables: dict[str, Any], loc: tuple[str | int, ...]) -> Any:
    if isinstance(value, dict):
        return {key: _render(item, variables, (*loc, key)) for key, item in value.items()}
    if isinstance(value, list):
        if _plain_list(value):
            return value
        return [_render(item, variables, (*loc, i)) for i, item in enumerate(value)]
    if is_template(value):
        return _evaluate(value, variables, loc)
    return value


def _evaluate(source: str, variables: dict[str, Any], loc: tuple[str | int, ...]) -> Any:
    """One template string: its native value (a single expression) or its text."""
    try:
        compiled = _compile(source)
        if isinstance(compiled, TemplateExpression):
            return _native(compiled(variables))
        return compiled.render(variables)
    except Exception as exc:  # any failure inside a template is the template author's error
        raise _error(source, loc, exc) from exc


@lru_cache(maxsize=1024)
def _compile(source: str) -> Template | TemplateExpression:
    """Compile once per distinct source: a native expression, or a template rendering text."""
    tree = _ENV.parse(source)
    expr = _single_expression(tree)
    if expr is None:
        return _ENV.from_string(tree)
    body = nodes.Template([nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)], lineno=1)
    body.set_environment(_ENV)
    return TemplateExpression(_ENV.from_string(body), undefined_to_none=False)


def _single_expression(tree: nodes.Template) -> nodes.Expr | None:
    """The expression of a template that is one ``{{ ... }}`` and whitespace, else None."""
    if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
        return None
    parts = [n for n in tree.body[0].nodes if not (isinstance(n, nodes.TemplateData) and not n.data.strip())]
    if len(parts) == 1 and not isinstance(parts[0], nodes.TemplateData):
        return parts[0]
    return None


def _native(value: Any) -> Any:
    """A copy of ``value`` as JSON data: undefined -> None, iterables -> lists; refuse anything else."""
    if isinstance(value, Undefined) or value is None:
        return None
    if isinstance(value, str):
        return str(value)  # a plain str, not Markup
    if isinstance(value, Number):
        return value
    if isinstance(value, Mapping):
        return {key: _native(item) for key, item in value.items()}
    if isinstance(value, _LISTABLE):
        return [_native(item) for item in cast(Iterable[Any], value)]
    raise TemplateRuntimeError(f"the value is a {type(value).__name__!r}, which is not JSON data")


def _error(source: str, loc: Sequence[str | int], exc: Exception) -> ValidationError:
    """A 422 at ``loc`` naming the template and what went wrong with it."""
    quoted = repr(source if len(source) <= _EXCERPT else source[:_EXCERPT] + "...")
    if isinstance(exc, TemplateSyntaxError):
        problem = f"does not parse: {exc.message} (line {exc.lineno})"
    elif isinstance(exc, SecurityError):
        problem = f"is not allowed by the sandbox: {exc}"
    elif isinstance(exc, TemplateError):
        problem = f"failed: {exc}"
    else:
        problem = f"failed: {type(exc).__name__}: {exc}"
    return ValidationError.at(list(loc), f"template {quoted} {problem}", kind="template_error")


# -- inspection ---------------------------------------------------------------------------------


def _templates(value: Any, loc: tuple[str | int, ...]) -> Iterator[tuple[str, tuple[str | int, ...]]]:
    """Every template string in ``value`` with its location."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _templates(item, (*loc, key))
    elif isinstance(value, list):
        if _plain_list(value):
            return
        for i, item in enumerate(value):
            yield from _templates(item, (*loc, i))
    elif is_template(value):
        yield value, loc


@lru_cache(maxsize=1024)
def _inputs_read(source: str) -> frozenset[str]:
    """Input names read by one template: ``Getattr``/``Getitem`` on ``Name('INPUT'|'inputs')``."""
    try:
        tree = _ENV.parse(source)
    except TemplateSyntaxError:
        return frozenset()
    names: set[str] = set()
    getters: set[int] = set()  # the `INPUT.get` of `INPUT.get('x')`: a method, not an input
    for call in tree.find_all(nodes.Call):
        if _is_input(call.node, "get") and call.args and _literal(call.args[0]) is not None:
            getters.add(id(call.node))
            names.add(str(_literal(call.args[0])))
    for attr in tree.find_all(nodes.Getattr):
        if id(attr) not in getters and _is_input(attr):
            names.add(attr.attr)
    for item in tree.find_all(nodes.Getitem):
        if _is_input(item) and (name := _literal(item.arg)) is not None:
            names.add(name)
    return frozenset(names)


def _is_input(node: nodes.Node, attr: str | None = None) -> bool:
    """``node`` reads from INPUT/inputs directly (and, given ``attr``, is ``INPUT.<attr>``)."""
    if not isinstance(node, nodes.Getattr | nodes.Getitem):
        return False
    if attr is not None and not (isinstance(node, nodes.Getattr) and node.attr == attr):
        return False
    return isinstance(node.node, nodes.Name) and node.node.name in INPUT_NAMES


def _literal(node: nodes.Node) -> str | None:
    """A string constant's value, else None."""
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return node.value
    return None
