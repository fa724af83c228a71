"""``group_by``: group the candidates by a field value and keep the best few of each group.

Groups: candidates whose ``group_by_field`` values are equal form one group. Equality follows JSON
types: numbers numerically (``1`` and ``1.0`` group together), strings exactly (case-sensitive),
booleans apart from numbers, lists and objects by canonical JSON. Every candidate whose field is
absent or null falls into one group of its own, the *null group* (``group_key`` null), which is
ordered, capped and reported like any other group.

Order: inside a group, candidates by ``rank_key`` (score descending, then document id); groups by
their best candidate, in the same order. Each group keeps its best ``max_per_group`` candidates.

``output_mode`` (as in Mixpeek's ``StageParamsGroupBy``):

* ``first``: the best candidate of each group, one per group (deduplication).
* ``flatten``: the kept candidates of every group, group after group, with no group fields.
* ``all`` (default): one result document per group — the group's best candidate, with three fields
  added: ``group_key`` (the value, null for the null group), ``group_count`` (members listed) and
  ``group_documents`` (the kept members, best first, each as a result document; the best one is
  listed too). These mirror the ``key``/``count``/``documents`` of Mixpeek's group output while
  keeping the group a document of the result list; they replace user fields of the same names.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field

from siftline.filters import MISSING, get_path
from siftline.pipeline.candidates import Candidate, rank_key
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.base import Stage, StageParams


def _not_bool(value: Any) -> Any:
    """Refuse ``true``/``false`` where a count is expected (pydantic would read them as 0/1)."""
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    return value


class GroupByParams(StageParams):
    """The field to group by, how many documents a group keeps, and how groups are returned."""

    group_by_field: str = Field(min_length=1, description="Dotted path whose value groups the documents.")
    max_per_group: Annotated[int, BeforeValidator(_not_bool)] = Field(
        default=10, ge=1, le=1000, description="Most documents kept per group (best scores first)."
    )
    output_mode: Literal["first", "all", "flatten"] = Field(
        default="all",
        description="'first': best document per group; 'all': one document per group listing its "
        "members in group_documents; 'flatten': the kept documents as a flat list.",
    )


def group_key(value: Any) -> tuple[str, Any]:
    """A hashable key equal for values that group together (``MISSING``, null and NaN: the null group)."""
    if value is MISSING or value is None or (isinstance(value, float) and math.isnan(value)):
        return ("null", None)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    return ("json", json.dumps(value, sort_keys=True, default=str))


class GroupBy(Stage[GroupByParams]):
    """Group by a field; return groups (``all``), their best documents (``first``) or both flat."""

    stage_id: ClassVar[str] = "group_by"
    category: ClassVar[str] = "reduce"
    description: ClassVar[str] = (
        "Group the documents by a field value and keep the best max_per_group of each group; return one "
        "document per group (first/all) or the kept documents as a flat list (flatten)."
    )
    Params: ClassVar[type[GroupByParams]] = GroupByParams

    def run(self, ctx: ExecutionContext, candidates: list[Candidate]) -> list[Candidate]:
        params = self.params
        groups: dict[tuple[str, Any], list[Candidate]] = {}
        for cand in sorted(candidates, key=rank_key):
            value = get_path(cand.view(), params.group_by_field)
            groups.setdefault(group_key(value), []).append(cand)
        # Candidates were visited best first, so groups are created in order of their best member.
        kept = [members[: params.max_per_group] for members in groups.values()]
        if params.output_mode == "first":
            out = [members[0] for members in kept]
        elif params.output_mode == "flatten":
            out = [cand for members in kept for cand in members]
        else:
            out = [self._group_document(ctx, members) for members in kept]
        listed = len(out) if params.output_mode == "first" else sum(len(m) for m in kept)
        ctx.metadata.update(
            {
                "group_by_field": params.group_by_field,
                "output_mode": params.output_mode,
                "groups": len(groups),
                "largest_group": max((len(m) for m in groups.values()), default=0),
                "null_group_size": len(groups.get(("null", None), [])),
                "documents_dropped": len(candidates) - listed,
            }
        )
        return out

    def _group_document(self, ctx: ExecutionContext, members: list[Candidate]) -> Candidate:
        """The group as one result document: its best member plus the group fields."""
        best = members[0]
        value = get_path(best.view(), self.params.group_by_field)
        fields = dict(best.fields)
        fields["group_key"] = None if group_key(value)[0] == "null" else value
        fields["group_count"] = len(members)
        fields["group_documents"] = [m.as_result(with_vectors=ctx.return_vectors) for m in members]
        return dataclasses.replace(best, fields=fields)
