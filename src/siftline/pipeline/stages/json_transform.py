"""``json_transform``: reshape every document with a Jinja2 template over ``DOC``.

``template`` (as in Mixpeek's ``StageParamsJsonTransform``) is one Jinja2 string that must render to
a JSON object, e.g. ``'{"id": "{{ DOC.document_id }}", "title": {{ DOC.title | tojson }}}'``.
Locally it may also be a JSON object whose string values are templates (``{"title": "{{ DOC.name
}}"}``): each value is rendered on its own, and a value that is exactly one expression keeps its
native type (a list stays a list), so no quoting or ``tojson`` is needed.

Rendering: ``siftline.pipeline.templates.render`` (the immutable sandbox) with ``DOC`` (the
candidate's view: document_id, collection_id, the fields, score, _internal) plus ``INPUT``,
``CONTEXT`` and ``STAGE`` from ``ctx.template_context()``. ``template`` is a per-document
parameter (``per_document``): the runner leaves it unrendered and it is rendered here, per document.
Its syntax is checked when the parameters are validated.

Result: the rendered object replaces the document's user fields; the document keeps its
document_id, collection_id, score, internal data and vectors (keys of those names in the result
are ignored). Order and count are unchanged.

Errors (a template failure, output that is not JSON, or JSON that is not an object):
``fail_on_error`` true fails the stage, naming the document; false (the default) leaves that
document unchanged and records a warning. (The SDK drops such documents instead; here nothing is
dropped, so the count stays N.) Left out (hosted-only): nothing — the SDK has no other fields.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar, Self

from pydantic import Field, model_validator

from siftline.errors import BadRequestError, ValidationError
from siftline.pipeline import templates
from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.base import Stage, StageParams, as_pydantic_error

KEPT = ("document_id", "collection_id", "score", "_internal")


class JsonTransformParams(StageParams):
    """The template (kept raw: rendered per document) and what a failing document does."""

    template: str | dict[str, Any] = Field(
        description="A Jinja2 string rendering a JSON object, or an object whose string values are templates."
    )
    fail_on_error: bool = Field(default=False, description="Fail the stage on the first failing document.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        try:
            if isinstance(self.template, str) and not self.template.strip():
                raise ValidationError.at(("template",), "the template is empty")
            templates.check_syntax(self.template, ("template",))
            if isinstance(self.template, str) and not templates.is_template(self.template):
                _as_object(self.template)  # a constant must already be a JSON object
        except ValidationError as exc:
            raise as_pydantic_error(exc, type(self).__name__) from None
        except ValueError as exc:
            raise as_pydantic_error(
                ValidationError.at(("template",), str(exc)), type(self).__name__
            ) from None
        return self


def _as_object(rendered: Any) -> dict[str, Any]:
    """The rendered template as a JSON object; ValueError when it is not one."""
    if isinstance(rendered, str):
        try:
            rendered = json.loads(rendered)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the template did not render valid JSON: {exc}") from None
    if not isinstance(rendered, dict):
        raise ValueError(f"the template must render a JSON object, got {type(rendered).__name__}")
    return rendered


class JsonTransform(Stage[JsonTransformParams]):
    """Replace each document's fields with its rendering of the template."""

    stage_id: ClassVar[str] = "json_transform"
    category: ClassVar[str] = "apply"
    description: ClassVar[str] = (
        "Reshape each document: render a Jinja2 template over DOC (a JSON string, or an object of "
        "templates) and make the resulting JSON object the document's fields."
    )
    icon: ClassVar[str] = "braces"
    per_document: ClassVar[frozenset[str]] = frozenset({"template"})
    Params: ClassVar[type[JsonTransformParams]] = JsonTransformParams

    def run(self, ctx: ExecutionContext, candidates: list[Candidate]) -> list[Candidate]:
        base = ctx.template_context()
        out: list[Candidate] = []
        failed: list[str] = []
        first = ""
        for cand in candidates:
            try:
                rendered = templates.render(self.params.template, {**base, "DOC": cand.view()}, ("template",))
                fields = _as_object(rendered)
            except (ValidationError, ValueError) as exc:
                message = exc.message if isinstance(exc, ValidationError) else str(exc)
                if self.params.fail_on_error:
                    raise BadRequestError(
                        f"json_transform failed on document '{cand.document_id}': {message}",
                        {"document_id": cand.document_id},
                    ) from exc
                failed.append(cand.document_id)
                first = first or f"'{cand.document_id}': {message}"
                out.append(cand)
                continue
            new = {k: v for k, v in fields.items() if k not in KEPT}
            out.append(dataclasses.replace(cand, fields=new))
        if failed:
            ctx.warnings.append(
                f"json_transform left {len(failed)} document(s) unchanged (template failed); first {first}"
            )
        ctx.metadata.update(
            {
                "transformed": len(candidates) - len(failed),
                "failed": len(failed),
                "failed_document_ids": failed[:20],
            }
        )
        return out
