"""``sample``: keep a random subset of ``count`` candidates (random, stratified or reservoir sampling).

Parameters follow Mixpeek's ``StageParamsSample`` (``count``, ``strategy``, ``stratify_by``,
``min_per_stratum``, ``seed``, ``preserve_top_k``); the SDK has no fraction, so neither has this
stage. The output has ``min(count, len(input))`` candidates and keeps the input's relative order:
sampling chooses *which* candidates stay, never reorders them.

* ``preserve_top_k``: the first k candidates in the current order (after a sort: the top k) are
  always kept; the rest of the ``count`` is sampled from the remaining candidates. It may not exceed
  ``count``.
* ``random``: a uniform sample without replacement (``random.Random.sample``).
* ``reservoir``: Algorithm R over the remaining candidates in order; uniform too, with a different
  sequence of draws (so the same seed gives a different sample than ``random``).
* ``stratified``: candidates are split by the value of ``stratify_by`` (a dotted path; values equal
  as in ``group_by``, absent and null forming one stratum). First every stratum is brought up to
  ``min(min_per_stratum, its size)`` documents, preserved ones counting, strata served in order of
  their first candidate; then the remaining slots are shared in proportion to what each stratum
  still has (largest remainders, ties to the earlier stratum). ``count`` is a hard cap: when the
  minimums need more slots than it leaves, later strata go short, which the metadata reports
  (``strata_below_minimum``) together with a warning.

``seed``: the same seed and the same input give the same output; without a seed each run differs.
Metadata: ``strategy``, ``seed``, ``count``, ``input_count``, ``returned``, ``dropped``,
``preserved``; for stratified also ``strata`` and ``strata_below_minimum``.
"""

from __future__ import annotations

import random
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, model_validator

from siftline.filters import get_path
from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.base import Stage, StageParams
from siftline.pipeline.stages.group_by import group_key


def _not_bool(value: Any) -> Any:
    """Refuse ``true``/``false`` where an integer is expected."""
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    return value


Int = Annotated[int, BeforeValidator(_not_bool)]


class SampleParams(StageParams):
    """How many to keep, how to choose them, and what is always kept."""

    count: Int = Field(default=10, ge=1, le=1000, description="Documents to keep (all when fewer arrive).")
    strategy: Literal["random", "stratified", "reservoir"] = Field(
        default="random", description="'random' (uniform), 'stratified' (by stratify_by) or 'reservoir'."
    )
    stratify_by: str | None = Field(
        default=None, min_length=1, description="Dotted field whose values form the strata (stratified)."
    )
    min_per_stratum: Int = Field(
        default=1, ge=0, description="Fewest documents kept per stratum (stratified)."
    )
    seed: Int | None = Field(default=None, description="Random seed: same seed and input, same output.")
    preserve_top_k: Int = Field(default=0, ge=0, description="The first k documents are always kept.")

    @model_validator(mode="before")
    @classmethod
    def _sdk_null(cls, data: Any) -> Any:
        """The SDK sends the string 'null' for an unset value: read it as null."""
        if isinstance(data, dict):
            return {k: None if k == "stratify_by" and v == "null" else v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> SampleParams:
        if self.strategy == "stratified" and self.stratify_by is None:
            raise ValueError("strategy 'stratified' needs stratify_by (the field to stratify on)")
        if self.preserve_top_k > self.count:
            raise ValueError(f"preserve_top_k ({self.preserve_top_k}) may not exceed count ({self.count})")
        return self


class Sample(Stage[SampleParams]):
    """Keep ``count`` candidates chosen at random (optionally per stratum), in their input order."""

    stage_id: ClassVar[str] = "sample"
    category: ClassVar[str] = "reduce"
    description: ClassVar[str] = (
        "Keep a random sample of count documents (random, stratified by a field, or reservoir), seeded for "
        "reproducibility, always keeping the first preserve_top_k; the input order is kept."
    )
    Params: ClassVar[type[SampleParams]] = SampleParams

    def run(self, ctx: ExecutionContext, candidates: list[Candidate]) -> list[Candidate]:
        p = self.params
        rng = random.Random(p.seed)
        target = min(p.count, len(candidates))
        preserved = list(range(min(p.preserve_top_k, target)))
        rest = list(range(len(preserved), len(candidates)))
        slots = target - len(preserved)
        stats: dict[str, Any] = {}
        if p.strategy == "random":
            chosen = rng.sample(rest, slots)
        elif p.strategy == "reservoir":
            chosen = _reservoir(rng, rest, slots)
        else:
            chosen = self._stratified(ctx, rng, candidates, len(preserved), slots, stats)
        keep = set(preserved) | set(chosen)
        out = [c for i, c in enumerate(candidates) if i in keep]
        ctx.metadata.update(
            {
                "strategy": p.strategy,
                "seed": p.seed,
                "count": p.count,
                "input_count": len(candidates),
                "returned": len(out),
                "dropped": len(candidates) - len(out),
                "preserved": len(preserved),
                **stats,
            }
        )
        return out

    def _stratified(
        self,
        ctx: ExecutionContext,
        rng: random.Random,
        candidates: list[Candidate],
        n_preserved: int,
        slots: int,
        stats: dict[str, Any],
    ) -> list[int]:
        p = self.params
        assert p.stratify_by is not None
        strata: dict[tuple[str, Any], list[int]] = {}
        for i, cand in enumerate(candidates):
            strata.setdefault(group_key(get_path(cand.view(), p.stratify_by)), []).append(i)
        pools: list[list[int]] = []  # the sampleable members of each stratum, shuffled
        have: list[int] = []  # members already in the output
        for members in strata.values():
            pool = [i for i in members if i >= n_preserved]
            rng.shuffle(pool)
            pools.append(pool)
            have.append(len(members) - len(pool))
        chosen: list[int] = []
        short = 0
        for s, members in enumerate(strata.values()):
            need = min(max(min(p.min_per_stratum, len(members)) - have[s], 0), slots - len(chosen))
            chosen += pools[s][:need]
            pools[s] = pools[s][need:]
            short += have[s] + need < min(p.min_per_stratum, len(members))
        left = slots - len(chosen)
        available = sum(len(pool) for pool in pools)
        if left and available:
            quota = [left * len(pool) // available for pool in pools]
            remainder = [left * len(pool) % available for pool in pools]
            by_remainder = sorted(range(len(pools)), key=lambda s: (-remainder[s], s))
            for s in by_remainder[: left - sum(quota)]:
                quota[s] += 1
            for s, pool in enumerate(pools):
                chosen += pool[: quota[s]]
        stats.update({"strata": len(strata), "strata_below_minimum": short})
        if short:
            ctx.warnings.append(
                f"sample: count {p.count} leaves no room for min_per_stratum {p.min_per_stratum} in "
                f"{short} of {len(strata)} strata"
            )
        return chosen


def _reservoir(rng: random.Random, items: list[int], size: int) -> list[int]:
    """Algorithm R: a uniform sample of ``size`` items, reading them once in order."""
    reservoir = items[:size]
    for seen, item in enumerate(items[size:], start=size + 1):
        j = rng.randrange(seen)
        if j < size:
            reservoir[j] = item
    return reservoir
