"""``attribute_filter``: keep the candidates whose fields satisfy a condition or a boolean tree.

Two modes, as in Mixpeek's ``StageParamsAttributeFilter``: a single ``field``/``operator``/``value``
condition, or a ``conditions`` tree in the ``LogicalOperator`` language of ``filters.py``. Both are
parsed when the parameters are validated, so a malformed tree is a 422 naming the exact location
(``conditions.AND.1.operator``) before anything runs. Dynamic values are bound to the request inputs
at run time; a condition whose input is absent is relaxed (dropped) and reported, not failed.

Case: the simple condition is case-sensitive unless ``case_insensitive`` is true (the SDK's
default). A tree means what the filter language says (its own ``case_sensitive`` keys, default
insensitive), so the same JSON filters alike here and as a pre-filter; ``case_insensitive: true``
makes every condition of the tree case-insensitive.

A dynamic value must name an input that ``input_schema`` declares (checked at creation, as plan.py
does for templates). The stage filters the candidates it is given; it never reads storage. Hosted-only SDK fields
(``natural_language``, ``field_hints``: LLM conversion; ``batch_size``: streaming) are not accepted.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

from pydantic import Field, PrivateAttr, field_validator, model_validator

from siftline.errors import ValidationError
from siftline.filters import (
    Condition,
    Dynamic,
    Node,
    RelaxedCondition,
    bind,
    fields_of,
    parse_filter,
)
from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import AbsorbedRun, ExecutionContext
from siftline.pipeline.stages.base import PlanContext, Stage, StageParams, as_pydantic_error

Operator = Literal[
    "eq", "ne", "gt", "lt", "gte", "lte", "in", "nin", "contains",
    "starts_with", "ends_with", "regex", "exists", "is_null", "text",
]  # fmt: skip


def _ignore_case(node: Node) -> Node:
    """The same tree with every condition case-insensitive (``case_insensitive: true``)."""
    if isinstance(node, Condition):
        return Condition(node.field, node.op, node.value, False)
    return type(node)(tuple(_ignore_case(item) for item in node.items))


def _dynamic_paths(node: Node | None) -> list[str]:
    """The input paths of the tree's dynamic values, in filter order."""
    if node is None:
        return []
    if isinstance(node, Condition):
        return [node.value.path] if isinstance(node.value, Dynamic) else []
    return [path for item in node.items for path in _dynamic_paths(item)]


def _input_name(path: str) -> str:
    """The input a dynamic path reads: ``inputs.x.y``, ``INPUT.x`` and ``x`` all read ``x``."""
    parts = [p for p in path.split(".") if p]
    return parts[1] if len(parts) > 1 and parts[0].lower() in ("inputs", "input") else parts[0]


class AttributeFilterParams(StageParams):
    """Simple mode (``field``, ``operator``, ``value``) or boolean mode (``conditions``), not both."""

    # The SDK always sends these hosted knobs: batch_size (streaming) and field_hints (for the LLM
    # translation of natural_language) change nothing here. natural_language itself is only accepted
    # unset ("null"): a real sentence would need an LLM and is refused.
    SDK_IGNORED: ClassVar[frozenset[str]] = frozenset({"batch_size", "field_hints"})

    natural_language: str | None = Field(
        default=None,
        description="Accepted only unset (null, or the SDK's 'null'): natural-language filters need an LLM.",
    )

    @field_validator("natural_language")
    @classmethod
    def _unset_natural_language(cls, value: str | None) -> None:
        if value not in (None, "null", ""):
            raise ValueError(
                "natural-language filters need an LLM, which Siftline does not run; use conditions"
            )
        return None

    field: str | None = Field(default=None, description="Dotted path of the simple condition, e.g. 'status'.")
    operator: Operator | None = Field(default=None, description="Operator of the simple condition (eq).")
    value: Any = Field(default=None, description="Value of the simple condition, or a dynamic reference.")
    conditions: dict[str, Any] | None = Field(
        default=None, description="A LogicalOperator tree: {'AND'|'OR'|'NOT': [...], 'case_sensitive': bool}."
    )
    case_insensitive: bool = Field(default=False, description="Compare strings case-insensitively.")
    _node: Node | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _parse(self) -> Self:
        try:
            node = self._parse_conditions() if self.conditions is not None else self._parse_simple()
        except ValidationError as exc:
            raise as_pydantic_error(exc, type(self).__name__) from None
        self._node = _ignore_case(node) if node is not None and self.case_insensitive else node
        return self

    def _parse_conditions(self) -> Node | None:
        for key in ("field", "operator", "value"):
            if key in self.model_fields_set:
                raise ValidationError.at(
                    (key,), f"'{key}' belongs to the simple mode; with 'conditions' put it inside the tree"
                )
        return parse_filter(self.conditions, ("conditions",))

    def _parse_simple(self) -> Node | None:
        if self.field is None:
            raise ValidationError.at(
                ("field",), "give a 'field' (with 'operator' and 'value') or a 'conditions' tree"
            )
        raw: dict[str, Any] = {"field": self.field, "operator": self.operator}
        raw["case_sensitive"] = not self.case_insensitive
        if "value" in self.model_fields_set:
            raw["value"] = self.value
        return parse_filter(raw, ())

    @property
    def node(self) -> Node | None:
        """The parsed filter (``None``: an empty tree, which keeps everything)."""
        return self._node


class AttributeFilter(Stage[AttributeFilterParams]):
    """Keep the candidates matching the filter, in their incoming order."""

    stage_id: ClassVar[str] = "attribute_filter"
    category: ClassVar[str] = "filter"
    description: ClassVar[str] = (
        "Keep the documents whose fields satisfy one field/operator/value condition or an AND/OR/NOT "
        "conditions tree; dynamic values come from the inputs, and an absent input relaxes its condition."
    )
    Params: ClassVar[type[AttributeFilterParams]] = AttributeFilterParams

    @classmethod
    def check(cls, params: AttributeFilterParams, plan: PlanContext, loc: list[str | int]) -> None:
        """A dynamic value must read a declared input (an undeclared one could never be provided)."""
        where = "conditions" if params.conditions is not None else "value"
        for path in _dynamic_paths(params.node):
            name = _input_name(path)
            if name not in plan.input_names:
                raise ValidationError.at(
                    [*loc, where],
                    f"the dynamic value '{path}' reads the input '{name}', which input_schema does not "
                    "declare; add it to input_schema",
                )

    def bound(self, ctx: ExecutionContext) -> tuple[Node | None, list[RelaxedCondition]]:
        """The filter with its dynamic values bound to the inputs, and the conditions relaxed."""
        return bind(self.params.node, ctx.inputs)

    def report(
        self, ctx: ExecutionContext, count_in: int, count_out: int, relaxed: list[RelaxedCondition]
    ) -> dict[str, Any]:
        """Warn about relaxed conditions; the stage's statistics metadata."""
        for r in relaxed:
            ctx.warnings.append(
                f"Stage '{self.name}' (attribute_filter): filter condition on '{r.field}' ({r.operator}) "
                f"was relaxed: input '{r.input_path}' was not provided."
            )
        return {
            "mode": "conditions" if self.params.conditions is not None else "simple",
            "input_count": count_in,
            "matched": count_out,
            "dropped": count_in - count_out,
            "fields": sorted(fields_of(self.params.node)),
            "relaxed_conditions": [
                {"field": r.field, "operator": r.operator, "input": r.input_path} for r in relaxed
            ],
        }

    def run(self, ctx: ExecutionContext, candidates: list[Candidate]) -> list[Candidate]:
        """Filter; filters merged into this one (``merge_consecutive_filters``) follow in the same pass,
        each document's view built once."""
        chain = [(self, None)] + [(stage, planned) for rule, planned, stage in ctx.absorbed]
        bound = [(stage, planned, *stage.bound(ctx)) for stage, planned in chain]
        counts = [0] * len(chain)
        kept = []
        for cand in candidates:
            view = cand.view()
            for i, (_, _, node, _) in enumerate(bound):
                if node is not None and not node.predicate(view):
                    break
                counts[i] += 1
            else:
                kept.append(cand)
        count_in = len(candidates)
        for i, (stage, planned, _, relaxed) in enumerate(bound):
            metadata = stage.report(ctx, count_in, counts[i], relaxed)
            if planned is None:
                ctx.metadata.update(metadata)
            else:
                ctx.absorbed_runs.append(
                    AbsorbedRun(planned.name, planned.stage_id, "merge_consecutive_filters", self.name,
                                count_in, counts[i], 0.0, metadata, planned.index)
                )  # fmt: skip
            count_in = counts[i]
        return kept
