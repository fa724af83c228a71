"""Late materialization: the stages the optimizer folded into a ``feature_search``, run over ids and scores.

A search's fused list is first a list of *stubs* (document and collection id, score, per-leg scores;
no fields). The absorbed stages then run over the stubs, in pipeline order, before any document is
read: an ``attribute_filter`` (and the search's own ``post_filters``) is evaluated by storage over the
stubs' ids, through payload indexes (``Storage.match_documents``); a redundant ``sort_relevance`` is
checked to be a no-op (and run over the stubs when it is not); a ``limit`` slices; a ``group_by``
reads only its field (``Storage.field_values``) and hydrates only the members it keeps. Then only the
survivors are hydrated — or, when the search is the last stage, only the requested page.

Each absorbed stage reports the statistics it would have reported running on its own (counts and
metadata), so a run is identical with the optimizer on or off. When storage cannot evaluate a filter
(a field name it can't address), the stubs are hydrated and the rest runs in Python, as it would
have without the optimizer.
"""

from __future__ import annotations

import itertools
import math
import time
from typing import TYPE_CHECKING, Any

from siftline.errors import StorageError, ValidationError
from siftline.filters import MISSING, Node, get_path
from siftline.pipeline.candidates import Candidate, rank_key
from siftline.pipeline.context import AbsorbedRun, ExecutionContext
from siftline.pipeline.stages.group_by import GroupBy, group_key

if TYPE_CHECKING:
    from siftline.pipeline.stages.feature_search import FeatureSearch

Key = tuple[str, str]


class _Stubs:
    """The running list: stubs until something needs the documents, then hydrated candidates."""

    def __init__(
        self, ctx: ExecutionContext, search: FeatureSearch, legs: list[list[tuple[Key, float]]]
    ) -> None:
        self.ctx = ctx
        self.search = search
        self.legs = legs
        self.hydrated = False

    def stubs(self, fused: list[tuple[Key, float]]) -> list[Candidate]:
        """Ids and fused scores only (hydrating adds the fields and the per-search scores)."""
        return [Candidate(key[1], key[0], score, {}) for key, score in fused]

    def hydrate(self, items: list[Candidate]) -> list[Candidate]:
        return self.search._hydrate(self.ctx, [(c.key, c.score) for c in items], self.legs)


def run(
    ctx: ExecutionContext,
    search: FeatureSearch,
    fused: list[tuple[Key, float]],
    legs: list[list[tuple[Key, float]]],
) -> list[Candidate]:
    state = _Stubs(ctx, search, legs)
    items = state.stubs(fused)
    if ctx.pushed_post_filter is not None:
        items = _filter(state, items, ctx.pushed_post_filter)
    for rule, planned, stage in ctx.absorbed:
        started = time.perf_counter()
        count_in = len(items)
        metadata: dict[str, Any]
        if planned.stage_id == "attribute_filter":
            node, relaxed = stage.bound(ctx)
            items = _filter(state, items, node) if node is not None else items
            metadata = stage.report(ctx, count_in, len(items), relaxed)
        elif planned.stage_id == "group_by":
            items, metadata = _group(state, items, stage)
        else:  # sort_relevance (eliminated when already in order) and limit: the stage itself, over stubs
            if planned.stage_id == "sort_relevance" and _in_rank_order(items):
                metadata = {"eliminated": "already in score order"}
            else:
                items, metadata = _run_stage(ctx, stage, items)
        ctx.absorbed_runs.append(
            AbsorbedRun(
                planned.name,
                planned.stage_id,
                rule,
                search.name,
                count_in,
                len(items),
                (time.perf_counter() - started) * 1000,
                metadata,
                planned.index,
            )
        )
    if state.hydrated:
        return items
    return _hydrate_page(state, items)


def _hydrate_page(state: _Stubs, items: list[Candidate]) -> list[Candidate]:
    """Hydrate the survivors, or only the requested page when the search is the last stage."""
    window = state.ctx.page_window
    if window is None:
        return state.hydrate(items)
    start, end = window
    page = state.hydrate(items[start:end])
    if len(page) != len(items[start:end]):  # a document was deleted meanwhile: the whole list, as without
        return state.hydrate(items)
    return [*items[:start], *page, *items[end:]]


def _filter(state: _Stubs, items: list[Candidate], node: Node) -> list[Candidate]:
    """The items the filter keeps, in order: by storage over ids, or in Python once hydrated."""
    if not state.hydrated:
        try:
            passing: set[Key] = set()
            by_collection: dict[str, list[str]] = {}
            for cand in items:
                by_collection.setdefault(cand.collection_id, []).append(cand.document_id)
            for col_id, ids in by_collection.items():
                collection = state.ctx.collection(col_id)
                if collection is not None:
                    passing |= {(col_id, i) for i in state.ctx.storage.match_documents(collection, ids, node)}
            return [c for c in items if c.key in passing]
        except (ValidationError, StorageError):
            items = _materialize(state, items)
    return [c for c in items if node.predicate(c.view())]


def _materialize(state: _Stubs, items: list[Candidate]) -> list[Candidate]:
    state.hydrated = True
    return state.hydrate(items)


def _in_rank_order(items: list[Candidate]) -> bool:
    """Whether sort_relevance (score, descending) would leave the list as it is."""
    if not all(isinstance(c.score, int | float) and math.isfinite(c.score) for c in items):
        return False
    keys = [rank_key(c) for c in items]
    return all(a <= b for a, b in itertools.pairwise(keys))


def _run_stage(
    ctx: ExecutionContext, stage: Any, items: list[Candidate]
) -> tuple[list[Candidate], dict[str, Any]]:
    saved, ctx.metadata = ctx.metadata, {}
    try:
        out = stage.run(ctx, items)
        return out, ctx.metadata
    finally:
        ctx.metadata = saved


def _group(state: _Stubs, items: list[Candidate], stage: GroupBy) -> tuple[list[Candidate], dict[str, Any]]:
    """group_by reading only its field: the kept members alone are hydrated, then grouped for real."""
    params = stage.params
    ordered = sorted(items, key=rank_key)
    if not state.hydrated:
        try:
            values = _field_values(state, ordered, params.group_by_field)
        except (ValidationError, StorageError):
            ordered = _materialize(state, ordered)
    if state.hydrated:
        values = {c.key: get_path(c.view(), params.group_by_field) for c in ordered}
    groups: dict[tuple[str, Any], list[Candidate]] = {}
    for cand in ordered:
        groups.setdefault(group_key(values.get(cand.key, MISSING)), []).append(cand)
    kept = [c for members in groups.values() for c in members[: params.max_per_group]]
    if not state.hydrated:
        kept = _materialize(state, kept)
    out, metadata = _run_stage(state.ctx, stage, kept)
    listed = len(out) if params.output_mode == "first" else len(kept)
    metadata.update(  # the figures of the whole input, as the stage alone would report them
        {
            "groups": len(groups),
            "largest_group": max((len(m) for m in groups.values()), default=0),
            "null_group_size": len(groups.get(("null", None), [])),
            "documents_dropped": len(items) - listed,
        }
    )
    return out, metadata


def _field_values(state: _Stubs, items: list[Candidate], field: str) -> dict[Key, Any]:
    """The field of each stub as ``Candidate.view()`` would show it (score and ids from the stub)."""
    head = field.split(".")[0]
    if head == "score":
        return {c.key: c.score if field == "score" else MISSING for c in items}
    by_collection: dict[str, list[str]] = {}
    for cand in items:
        by_collection.setdefault(cand.collection_id, []).append(cand.document_id)
    out: dict[Key, Any] = {}
    for col_id, ids in by_collection.items():
        collection = state.ctx.collection(col_id)
        if collection is not None:
            for doc_id, value in state.ctx.storage.field_values(collection, ids, field).items():
                out[(col_id, doc_id)] = value
    return out
