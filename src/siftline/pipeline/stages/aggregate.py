"""``aggregate``: compute counts, sums, averages... over the candidates, globally or per group.

Groups: with ``group_by``, candidates whose key fields are all equal form one group (equality as in
``group_by``: numbers numerically, strings exactly, lists/objects by canonical JSON; absent, null and
NaN values are one *null* key shown as ``null``). Without ``group_by`` there is one global group,
which is returned even when there are no candidates (then ``count`` is 0).

Output: one result document per group, ``fields`` = the group keys (by alias, the value of the
group's best member) and the aggregates (by alias); with ``include_documents`` also ``documents``,
the members as result documents, best first. ``document_id`` is ``group:`` + the canonical JSON list
of the key values (``group:[]`` for the global group); ``collection_id`` is the members' collection,
or their sorted distinct collections joined by ``,`` when they come from several (empty when there
are none); ``score`` is the best member score (0.0 for an empty global group).

Functions (values are read from ``Candidate.view()`` by dotted path; absent and null values are
skipped by every function but ``count`` without a field, which counts documents):

* ``count``: members (with ``field``: members whose field is present and not null).
* ``count_distinct`` / ``collect_distinct``: distinct values (group-key equality), first-seen order.
* ``sum``/``avg``/``min``/``max``: over the finite numbers only; booleans, strings, lists, NaN and
  infinities are skipped and counted in the ``skipped_values`` metadata. ``sum`` of nothing is 0;
  ``avg``/``min``/``max`` of nothing are null.
* ``first``/``last``: the value of the best/worst member (``rank_key`` order) having one.
* ``collect``: every value, members in ``rank_key`` order.

Order: groups by their best member (``rank_key``), or by ``sort_by`` (an aggregate or group-key alias)
in ``sort_order`` with nulls last and ties in the default order; then ``limit``. Parameters follow
Mixpeek's ``StageParamsAggregate``; left out: the functions ``percentile``, ``stddev``, ``variance``,
``frequency``, ``co_occurrence``, ``correlation`` and their knobs ``field_b``, ``percentile_value``,
``top_k``. ``include_documents`` here attaches members to each group (the hosted product returns the
documents themselves with aggregates in metadata).
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, model_validator

from siftline.filters import MISSING, get_path
from siftline.pipeline.candidates import Candidate, rank_key
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.base import Stage, StageParams
from siftline.pipeline.stages.group_by import group_key
from siftline.pipeline.stages.sort_attribute import sort_key

Function = Literal[
    "count", "count_distinct", "sum", "avg", "min", "max", "first", "last", "collect", "collect_distinct"
]
NUMERIC = ("sum", "avg", "min", "max")
RESERVED = ("document_id", "collection_id", "score", "_internal")


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    return value


class AggregationOperation(StageParams):
    """One function over one field, named by ``alias`` in the output."""

    function: Function = Field(description="The aggregation function.")
    field: str | None = Field(default=None, min_length=1, description="Dotted path; optional for count.")
    alias: str = Field(min_length=1, description="Output field name, unique within the stage.")

    @model_validator(mode="after")
    def _field_needed(self) -> AggregationOperation:
        if self.field is None and self.function != "count":
            raise ValueError(f"function '{self.function}' needs a 'field'")
        return self


class GroupByField(StageParams):
    """One group key: a dotted path and its output name (default: the last path segment)."""

    field: str = Field(min_length=1, description="Dotted path whose value is part of the group key.")
    alias: str | None = Field(default=None, min_length=1, description="Output field name of the key.")

    @property
    def name(self) -> str:
        return self.alias or self.field.rsplit(".", 1)[-1]


class AggregateParams(StageParams):
    """What to compute, over which groups, and which groups to return in which order."""

    aggregations: list[AggregationOperation] = Field(min_length=1, description="Aggregations to compute.")
    group_by: list[GroupByField] | None = Field(default=None, description="Group keys; none: one group.")
    sort_by: str | None = Field(default=None, description="Alias (aggregate or group key) to sort by.")
    sort_order: Literal["asc", "desc"] = Field(default="desc", description="Direction of sort_by.")
    limit: Annotated[int, BeforeValidator(_not_bool)] | None = Field(
        default=None, ge=1, le=1000, description="Most groups returned."
    )
    include_documents: bool = Field(default=False, description="Attach each group's members as 'documents'.")

    @model_validator(mode="before")
    @classmethod
    def _sdk_null(cls, data: Any) -> Any:
        """The SDK sends the string 'null' for an unset value: read it as null."""
        if isinstance(data, dict):
            return {k: None if k == "sort_by" and v == "null" else v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _aliases(self) -> AggregateParams:
        names = [g.name for g in self.group_by or []] + [a.alias for a in self.aggregations]
        taken = set(RESERVED) | ({"documents"} if self.include_documents else set())
        for name in names:
            if name in taken:
                raise ValueError(f"output name '{name}' is used twice or is reserved; choose another alias")
            taken.add(name)
        if self.sort_by is not None and self.sort_by not in names:
            raise ValueError(f"sort_by '{self.sort_by}' is not an aggregation or group-by alias: {names}")
        return self


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def compute(op: AggregationOperation, members: list[Candidate], skipped: dict[str, int]) -> Any:
    """One aggregate over a group's members (already in ``rank_key`` order)."""
    if op.field is None:
        return len(members)
    values = [
        v for v in (get_path(m.view(), op.field) for m in members) if v is not MISSING and v is not None
    ]
    if op.function == "count":
        return len(values)
    if op.function in ("count_distinct", "collect_distinct"):
        distinct = {group_key(v): v for v in reversed(values)}  # first-seen value of each key wins
        ordered = list(reversed(distinct.values()))
        return len(ordered) if op.function == "count_distinct" else ordered
    if op.function == "collect":
        return values
    if op.function == "first":
        return values[0] if values else None
    if op.function == "last":
        return values[-1] if values else None
    numbers = [n for n in map(_number, values) if n is not None]
    skipped[op.alias] = skipped.get(op.alias, 0) + len(values) - len(numbers)
    if op.function == "sum":
        return sum(numbers)
    if not numbers:
        return None
    if op.function == "avg":
        return sum(numbers) / len(numbers)
    return min(numbers) if op.function == "min" else max(numbers)


class Aggregate(Stage[AggregateParams]):
    """Reduce the candidates to one result document per group carrying its keys and aggregates."""

    stage_id: ClassVar[str] = "aggregate"
    category: ClassVar[str] = "reduce"
    description: ClassVar[str] = (
        "Compute count, count_distinct, sum, avg, min, max, first, last, collect or collect_distinct over "
        "the documents, globally or per group of key fields; one result per group, sortable and limitable."
    )
    Params: ClassVar[type[AggregateParams]] = AggregateParams

    def run(self, ctx: ExecutionContext, candidates: list[Candidate]) -> list[Candidate]:
        params = self.params
        keys = params.group_by or []
        groups: dict[tuple[Any, ...], list[Candidate]] = {} if keys else {(): []}
        for cand in sorted(candidates, key=rank_key):
            view = cand.view()
            groups.setdefault(tuple(group_key(get_path(view, k.field)) for k in keys), []).append(cand)
        skipped: dict[str, int] = {}
        out = [self._group(ctx, members, skipped) for members in groups.values()]
        if params.sort_by is not None:
            keyed = [(sort_key(c.fields[params.sort_by]), c) for c in out]
            present = [(k, c) for k, c in keyed if k is not None]
            present.sort(key=lambda kc: kc[0], reverse=params.sort_order == "desc")
            nulls = [c for k, c in keyed if k is None]
            out = [c for _, c in present] + nulls
        if params.limit is not None:
            out = out[: params.limit]
        ctx.metadata.update(
            {
                "documents_in": len(candidates),
                "groups": len(groups),
                "groups_returned": len(out),
                "group_by": [k.field for k in keys],
                "functions": [a.function for a in params.aggregations],
                "skipped_values": skipped,
            }
        )
        return out

    def _group(self, ctx: ExecutionContext, members: list[Candidate], skipped: dict[str, int]) -> Candidate:
        """The group as one result document (see the module docstring for its id, collection, score)."""
        fields: dict[str, Any] = {}
        for key in self.params.group_by or []:
            value = get_path(members[0].view(), key.field)
            fields[key.name] = None if group_key(value)[0] == "null" else value
        for op in self.params.aggregations:
            fields[op.alias] = compute(op, members, skipped)
        if self.params.include_documents:
            fields["documents"] = [m.as_result(with_vectors=ctx.return_vectors) for m in members]
        key_values = [fields[k.name] for k in self.params.group_by or []]
        document_id = "group:" + json.dumps(key_values, sort_keys=True, separators=(",", ":"), default=str)
        collection_id = ",".join(sorted({m.collection_id for m in members}))
        score = members[0].score if members else 0.0
        return Candidate(document_id, collection_id, score, fields)
