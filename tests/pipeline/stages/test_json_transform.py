"""json_transform: per-document rendering over DOC, error handling, validation, and the runner's first pass."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from siftline.errors import BadRequestError
from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.plan import validate_params
from siftline.pipeline.stages.json_transform import JsonTransform, JsonTransformParams


def ctx(**inputs: Any) -> ExecutionContext:
    return ExecutionContext(storage=None, embedder=None, collections=[], inputs=inputs)  # type: ignore[arg-type]


def docs() -> list[Candidate]:
    return [
        Candidate("d1", "c", 0.9, {"title": 'He said "hi"', "tags": ["a", "b"], "n": 3}, {"k": 1}),
        Candidate("d2", "c", 0.5, {"title": "plain", "tags": [], "n": 1}),
    ]


def run(
    template: Any, cands: list[Candidate], c: ExecutionContext | None = None, **kw: Any
) -> list[Candidate]:
    stage = JsonTransform("jt", JsonTransformParams(template=template, **kw))
    return stage.run(c or ctx(), cands)


def test_string_template_renders_json_per_document() -> None:
    template = (
        '{"id": "{{ DOC.document_id }}", "t": {{ DOC.title | tojson }}, "k": {{ DOC.tags | length }}, '
        '"s": {{ DOC.score }}, "q": {{ INPUT.q | tojson }}}'
    )
    out = run(template, docs(), ctx(q="cats"))
    assert out[0].fields == {"id": "d1", "t": 'He said "hi"', "k": 2, "s": 0.9, "q": "cats"}
    assert out[1].fields == {"id": "d2", "t": "plain", "k": 0, "s": 0.5, "q": "cats"}
    assert (out[0].document_id, out[0].collection_id, out[0].score, out[0].internal) == (
        "d1",
        "c",
        0.9,
        {"k": 1},
    )


def test_object_template_keeps_native_values_and_ignores_reserved_keys() -> None:
    template = {
        "name": "{{ DOC.title }}",
        "tags": "{{ DOC.tags }}",
        "const": 1,
        "document_id": "x",
        "score": 5,
    }
    out = run(template, docs())
    assert out[0].fields == {"name": 'He said "hi"', "tags": ["a", "b"], "const": 1}
    assert out[0].document_id == "d1" and out[0].score == 0.9


def test_failure_leaves_document_unchanged_with_warning() -> None:
    c = ctx()
    template = '{% if DOC.n > 2 %}not json{% else %}{"ok": true}{% endif %}'
    out = run(template, docs(), c)
    assert out[0].fields == docs()[0].fields and out[1].fields == {"ok": True}
    assert c.metadata == {"transformed": 1, "failed": 1, "failed_document_ids": ["d1"]}
    assert len(c.warnings) == 1 and "'d1'" in c.warnings[0]


def test_non_object_output_and_fail_on_error() -> None:
    with pytest.raises(BadRequestError, match="'d1'"):
        run("[{{ DOC.n }}]", docs(), fail_on_error=True)
    with pytest.raises(BadRequestError, match="d1"):
        run('{"x": {{ DOC._internal.k.missing.y }}}', docs(), fail_on_error=True)


def test_runner_first_pass_leaves_doc_templates_alone() -> None:
    raw = {"template": '{"t": {{ DOC.title | tojson }}}', "fail_on_error": "{{ INPUT.strict }}"}
    params = validate_params(JsonTransform, raw, ctx(strict=True).template_context(), ["parameters"])
    assert isinstance(params, JsonTransformParams)
    assert params.template == raw["template"] and params.fail_on_error is True


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"template": ""},
        {"template": "{{ DOC.x "},
        {"template": "not json at all"},
        {"template": "[1, 2]"},
        {"template": {"a": "{% if %}"}},
        {"template": "{}", "fail_on_error": "sometimes"},
        {"template": "{}", "extra": 1},
    ],
)
def test_bad_params(params: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        JsonTransformParams(**params)


@given(
    st.lists(st.text(max_size=20), max_size=8),
    st.dictionaries(st.text(min_size=1, max_size=5), st.integers()),
)
def test_tojson_round_trips_any_value(titles: list[str], extra: dict[str, int]) -> None:
    cands = [Candidate(f"d{i}", "c", float(i), {"title": t, "extra": extra}) for i, t in enumerate(titles)]
    out = run('{"t": {{ DOC.title | tojson }}, "e": {{ DOC.extra | tojson }}}', cands)
    assert [c.fields for c in out] == [{"t": t, "e": extra} for t in titles]
    assert [c.document_id for c in out] == [c.document_id for c in cands]
