"""Sandboxed Jinja2 rendering of stage parameters: native values, text, names, errors and the sandbox."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siftline.errors import ValidationError
from siftline.pipeline.templates import check_syntax, is_template, referenced_inputs, render

INPUTS: dict[str, Any] = {
    "query": "Red Shoes",
    "tags": ["a", "b"],
    "limit": 5,
    "ratio": 0.25,
    "strict": True,
    "filters": {"year": 2021},
    "nothing": None,
    "items": [1, 2],
}
CONTEXT: dict[str, Any] = {
    "INPUT": INPUTS,
    "DOC": {"document_id": "d1", "title": "Trail Runner", "metadata": {"year": 2020}},
    "CONTEXT": {"budget_remaining": 7.5, "time_elapsed_ms": 12.0},
    "STAGE": {"search": [{"document_id": "d9", "score": 0.9}]},
}
LOC: list[str | int] = ["parameters", "searches", 0, "query", "text"]


def r(source: Any, context: dict[str, Any] | None = None) -> Any:
    return render(source, CONTEXT if context is None else context, LOC)


def error_of(source: str, context: dict[str, Any] | None = None) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        r(source, context)
    return info.value


# -- detection ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{ x }}", True),
        ("a {% if x %}b{% endif %}", True),
        ("plain", False),
        ("{ not: a template }", False),
        ("{# only a comment #}", False),
        (3, False),
        (None, False),
        (["{{ x }}"], False),
    ],
)
def test_is_template(value: Any, expected: bool) -> None:
    assert is_template(value) is expected


# -- native values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ INPUT.tags }}", ["a", "b"]),
        ("{{ INPUT.filters }}", {"year": 2021}),
        ("{{ INPUT.limit }}", 5),
        ("{{ INPUT.ratio }}", 0.25),
        ("{{ INPUT.strict }}", True),
        ("{{ INPUT.nothing }}", None),
        ("{{ INPUT.missing }}", None),
        ("{{ INPUT.missing.deeper.still }}", None),
        ("{{ INPUT.tags[7] }}", None),
        ("  {{ INPUT.limit }}\n", 5),
        ("{{- INPUT.limit -}}", 5),
        ("{{ INPUT.limit }}{# a comment #}", 5),
        ("{{ INPUT.limit * 2 }}", 10),
        ("{{ [INPUT.limit, INPUT.missing] }}", [5, None]),
        ("{{ {'k': INPUT.query} }}", {"k": "Red Shoes"}),
        ("{{ INPUT.tags | map('upper') }}", ["A", "B"]),  # a generator becomes a list
        ("{{ INPUT.tags | reverse }}", ["b", "a"]),
        ("{{ (1, 2) }}", [1, 2]),
        ("{{ '5' }}", "5"),  # a string stays a string (no literal_eval as in NativeEnvironment)
        ("{{ INPUT.items }}", [1, 2]),  # a key named like a dict method reads the key
    ],
)
def test_single_expression_gives_its_native_value(source: str, expected: Any) -> None:
    assert r(source) == expected


def test_native_value_is_a_copy_of_the_input() -> None:
    inputs = {"tags": ["a"], "filters": {"year": 1}}
    out = r("{{ INPUT.tags }}", {"INPUT": inputs})
    out.append("b")
    r("{{ INPUT.filters }}", {"INPUT": inputs})["year"] = 2
    assert inputs == {"tags": ["a"], "filters": {"year": 1}}


# -- text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("shoes: {{ INPUT.query }}!", "shoes: Red Shoes!"),
        ("{{ INPUT.limit }}{{ INPUT.limit }}", "55"),
        ("{{ INPUT.limit }} items", "5 items"),
        ("[{{ INPUT.missing }}|{{ INPUT.nothing }}]", "[|]"),
        ("{{ INPUT.query | lower }}", "red shoes"),
        ("{{ INPUT.query | lower }} and more", "red shoes and more"),
        ("{{ INPUT.tags | join(', ') }}", "a, b"),
        ("{{ INPUT.filters | tojson }}", '{"year": 2021}'),
        ("{% for t in INPUT.tags %}{{ t }}{% if not loop.last %};{% endif %}{% endfor %}", "a;b"),
        ("{% for t in INPUT.tags %}{% if t == 'b' %}{% break %}{% endif %}{{ t }}{% endfor %}", "a"),
        ("{% if INPUT.strict %}yes{% else %}no{% endif %}", "yes"),
        ("{% if INPUT.missing %}yes{% else %}no{% endif %}", "no"),
        ("{% set n = INPUT.limit + 1 %}{{ n }}", "6"),
    ],
)
def test_other_templates_render_text(source: str, expected: str) -> None:
    assert r(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ INPUT.limit | default(10) }}", 5),
        ("{{ INPUT.missing | default(10) }}", 10),
        ("{{ INPUT.missing.deeper | default('x') }}", "x"),
        ("{{ INPUT.nothing | default(3, true) }}", 3),
    ],
)
def test_default_filter(source: str, expected: Any) -> None:
    assert r(source) == expected


def test_names_and_their_aliases() -> None:
    assert r("{{ inputs.query }}") == r("{{ INPUT.query }}") == "Red Shoes"
    assert r("{{ inputs['limit'] }}") == r("{{ INPUT['limit'] }}") == 5
    assert r("{{ DOC.metadata.year }}") == r("{{ doc.metadata.year }}") == 2020
    assert r("{{ CONTEXT.budget_remaining }}") == r("{{ context.budget_remaining }}") == 7.5
    assert r("{{ CONTEXT.time_elapsed_ms }}") == 12.0
    assert r("{{ STAGE.search[0].document_id }}") == r("{{ stage['search'][0].document_id }}") == "d9"
    assert r("{{ DOC.title }} / {{ STAGE.search | length }}") == "Trail Runner / 1"


def test_aliases_given_in_the_context_work_too() -> None:
    assert r("{{ INPUT.x }}-{{ doc.y }}", {"inputs": {"x": 1}, "DOC": {"y": 2}}) == "1-2"
    assert r("{{ INPUT.x }}", {}) is None  # no inputs at all: INPUT is {}
    assert r("{{ DOC.title }}", {}) is None  # no document (e.g. at creation): undefined, not an error


def test_renders_recursively_and_keeps_keys() -> None:
    params = {
        "searches": [{"query": {"text": "{{ INPUT.query }}"}, "top_k": "{{ INPUT.limit }}"}, {"top_k": 3}],
        "{{ INPUT.query }}": "literal key",
        "plain": "text",
        "flag": False,
    }
    assert render(params, CONTEXT) == {
        "searches": [{"query": {"text": "Red Shoes"}, "top_k": 5}, {"top_k": 3}],
        "{{ INPUT.query }}": "literal key",
        "plain": "text",
        "flag": False,
    }


@pytest.mark.parametrize("value", [None, 3, 2.5, True, "plain text", "{ x }", "{# c #}", b"{{ bytes }}"])
def test_non_templates_pass_through(value: Any) -> None:
    assert r(value) is value


@given(st.text().filter(lambda s: "{" not in s))
def test_text_without_braces_renders_to_itself(text: str) -> None:
    assert render(text, CONTEXT) == text
    assert render({"k": [text]}, CONTEXT) == {"k": [text]}


@given(st.text(alphabet=st.sampled_from("ab {}%#")).filter(lambda s: "{{" not in s and "{%" not in s))
def test_text_with_lone_braces_renders_to_itself(text: str) -> None:
    assert render(text, CONTEXT) == text


# -- errors -------------------------------------------------------------------------------------


def test_syntax_error_names_the_location_and_the_template() -> None:
    err = error_of("{{ INPUT.query ")
    assert err.status == 422
    assert err.errors[0]["loc"] == LOC
    assert err.errors[0]["type"] == "template_error"
    assert "parameters.searches.0.query.text" in err.message
    assert "'{{ INPUT.query '" in err.message
    assert "does not parse" in err.message


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("{{ INPUT.nothing.x }}", "cannot read attribute 'x' of None"),
        ("{{ INPUT.nothing['x'] }}", "cannot read item 'x' of None"),
        ("{{ INPUT.missing() }}", "has no attribute 'missing'"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("{{ INPUT.query + 1 }}", "TypeError"),
        ("{% for x in %}{% endfor %}", "does not parse"),
        ("{% endif %}", "does not parse"),
        ("{{ range }}", "not JSON data"),
        ("{{ INPUT.keys }}", "not JSON data"),
        ("{% include 'other.txt' %}", "no loader"),
        ("{% import 'macros.html' as m %}", "no loader"),
    ],
)
def test_template_errors_are_validation_errors(source: str, problem: str) -> None:
    err = error_of(source)
    assert err.errors[0]["loc"] == LOC
    assert problem in err.message
    assert repr(source) in err.message


def test_nested_error_location() -> None:
    params = {"searches": [{"query": {"text": "ok"}}, {"query": {"text": "{{ 1 / 0 }}"}}]}
    with pytest.raises(ValidationError) as info:
        render(params, CONTEXT)
    assert info.value.errors[0]["loc"] == ["parameters", "searches", 1, "query", "text"]


def test_long_template_is_shortened_in_the_message() -> None:
    source = "{{ 1 / 0 }}" + "x" * 500
    assert len(error_of(source).message) < 300


# -- sandbox ------------------------------------------------------------------------------------

ESCAPES = [
    "{{ INPUT.__class__ }}",
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ lipsum.__globals__['os'] }}",
    "{{ namespace.__init__ }}",
    "{{ self }}",
    "{{ self.__dict__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ INPUT | attr('__class__') }}",
    "{{ INPUT['__class__'] }}",
    "{{ '{0.__class__}'.format(INPUT) }}",
    "{{ '{x.__class__}'.format_map({'x': INPUT}) }}",
    "{{ INPUT.update({'query': 'pwned'}) }}",
    "{{ INPUT.clear() }}",
    "{{ INPUT.pop('query') }}",
    "{{ INPUT.setdefault('new', 1) }}",
    "{{ INPUT.tags.append('c') }}",
    "{{ INPUT.tags.pop() }}",
    "{{ INPUT.filters.update(year=1) }}",
    "{{ INPUT | attr('clear') }}",
    "{% do INPUT.update({'query': 'pwned'}) %}",
    "{% set _ = INPUT.clear() %}",
    "{% set INPUT.query = 'pwned' %}",
    "{% set x = INPUT.tags %}{{ x.append(1) }}",
    "{% include '/etc/passwd' %}",
    "{% extends '/etc/passwd' %}",
    "{{ 'a' * 10000000 }}",
    "{{ [0] * 10000000 }}",
    "{{ 10 ** 100000 }}",
    "{{ (10 ** 100) ** 100 }}",
    "{{ range(10 ** 9) | list }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_escapes_fail_and_never_touch_the_inputs(source: str) -> None:
    context = copy.deepcopy(CONTEXT)
    before = copy.deepcopy(context)
    with pytest.raises(ValidationError) as info:
        r(source, context)
    assert info.value.errors[0]["loc"] == LOC
    assert context == before


@pytest.mark.parametrize("source", ["{{ config }}", "{{ request }}", "{{ os }}", "{{ __builtins__ }}"])
def test_names_outside_the_context_are_just_undefined(source: str) -> None:
    assert r(source) is None


def test_sandbox_message_says_why() -> None:
    assert "unsafe" in error_of("{{ INPUT.__class__ }}").message
    assert "not allowed by the sandbox" in error_of("{{ INPUT.clear() }}").message


def test_safe_methods_still_work() -> None:
    assert r("{{ INPUT.query.lower().split() }}") == ["red", "shoes"]
    assert r("{{ INPUT.filters.get('year') }}") == 2021
    assert r("{{ 'x' * 3 }}") == "xxx"
    assert r("{{ 2 ** 10 }}") == 1024
    assert r("{{ range(3) | list }}") == [0, 1, 2]


# -- syntax checks and referenced inputs --------------------------------------------------------


def test_check_syntax_accepts_good_templates_and_plain_values() -> None:
    check_syntax({"a": ["{{ INPUT.x }}", "plain", 3, {"b": "{% if x %}y{% endif %}"}]}, ["p"])


def test_check_syntax_reports_the_bad_template_location() -> None:
    with pytest.raises(ValidationError) as info:
        check_syntax({"a": ["ok", {"b": "{{ INPUT.x "}]}, ["body", "stages", 0])
    assert info.value.errors[0]["loc"] == ["body", "stages", 0, "a", 1, "b"]
    assert "does not parse" in info.value.message


def test_check_syntax_does_not_evaluate() -> None:
    check_syntax("{{ 1 / 0 }} {{ INPUT.__class__ }}")


def test_referenced_inputs_walks_nested_params() -> None:
    params = {
        "searches": [
            {"query": {"text": "{{ INPUT.query }}"}, "top_k": "{{ inputs['k'] | default(10) }}"},
            {"query": "{% for t in INPUT.tags %}{{ t }}{% endfor %}"},
        ],
        "filters": {"year": "{{ inputs.year + INPUT.get('offset', 0) }}"},
        "not_inputs": "{{ DOC.title }} {{ STAGE.search }} {{ CONTEXT.budget_remaining }} {{ query }}",
        "dynamic": "{{ INPUT[name] }}",
        "deep": "{{ INPUT.filters.year }}",  # only the top-level name
        "broken": "{{ INPUT.never ",  # does not parse: skipped here, reported by check_syntax
        "plain": "INPUT.nope",
    }
    assert referenced_inputs(params) == {"query", "k", "tags", "year", "offset", "filters"}
    assert referenced_inputs("no templates") == set()
