"""Acceptance 2 of issue 10: the optimizer never changes a result.

A hypothesis property over random corpora and random pipelines: each example makes one collection (or
two, whose document ids may repeat) of random documents — payload fields of several types (keyword strings in mixed case, integers, floats,
booleans, lists, a nested object; mixed types across documents, some missing or null), small user
vectors (some missing, many ties) and a random set of payload indexes — and executes a random pipeline
from the stage catalogue ad hoc twice, with ``optimize: true`` and ``optimize: false`` (no cache), with
random request filters, pagination (offset, cursor, keyset; the next page too), ``return_vectors`` and
budgets. Both runs must agree on status, error, documents (ids, order, scores, every field),
pagination and totals, facets, and the input/output counts and credits of every stage. The optimized run's ``optimization_summary`` must describe the user's
pipeline; the unoptimized one must say nothing was applied.

The pipelines lean on the shapes the rules target: a filter, sort, limit or group_by right after a
search, filters in a row, sorts in a row, a search's post_filters and group_by, filters on ``score``
and ``document_id``, and the requested page after a lone search.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from helpers import served, settings_for
from siftline.features.embedder import TextEmbedder

R = "/v1/retrievers"
EMB = "mixpeek://vectors@v1/emb"
ALT = "mixpeek://vectors@v1/alt"
KEYWORDS = ["red", "Red", "blue", "Green", "green apple"]
FIELDS = ["kind", "n", "f", "flag", "tags", "meta.level", "document_id", "score", "absent"]
SUMMARY_KEYS = {
    "original_stage_count",
    "optimized_stage_count",
    "optimization_time_ms",
    "rules_applied",
    "stage_reduction_pct",
    "rewrites",
}
names = itertools.count()

# -- corpora --------------------------------------------------------------------------------------------

vec4 = st.lists(st.integers(-2, 2), min_size=4, max_size=4).map(
    lambda v: [float(x) for x in v] if any(v) else [1.0, 0, 0, 0]
)
vec2 = st.lists(st.integers(-2, 2), min_size=2, max_size=2).map(lambda v: [float(x) for x in v])
keyword = st.sampled_from(KEYWORDS)
number = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, -1.25, 2.0, 3.0]))


def document(doc_id: str) -> st.SearchStrategy[dict[str, Any]]:
    optional = {
        "kind": st.one_of(keyword, st.none(), st.integers(0, 2)),
        "n": st.one_of(st.integers(-3, 3), st.sampled_from([1.0, 2.5, "2", True])),
        "f": number,
        "flag": st.booleans(),
        "tags": st.lists(keyword, max_size=3),
        "meta": st.fixed_dictionaries({}, optional={"level": st.integers(0, 3)}),
        "vectors": st.fixed_dictionaries({}, optional={"emb": vec4, "alt": vec2}),
    }
    return st.fixed_dictionaries({"document_id": st.just(doc_id)}, optional=optional)


@st.composite
def documents(draw: st.DrawFn, most: int) -> list[dict[str, Any]]:
    ids = draw(st.lists(st.text("abxyz", min_size=1, max_size=3), max_size=most, unique=True))
    docs = [draw(document(doc_id)) for doc_id in ids]
    # most documents have the main vector, so searches find something
    for doc in docs:
        if draw(st.integers(0, 9)) > 0:
            doc.setdefault("vectors", {}).setdefault("emb", draw(vec4))
    return docs


@st.composite
def corpora(draw: st.DrawFn) -> dict[str, Any]:
    """One collection, or two (same features; document ids may repeat across them)."""
    parts = [draw(documents(18))]
    if draw(st.integers(0, 3)) == 0:
        parts.append(draw(documents(8)))
    indexes = draw(
        st.lists(
            st.sampled_from(
                [("kind", "keyword"), ("n", "integer"), ("f", "float"), ("flag", "bool"), ("tags", "keyword")]
            ),
            unique=True,
            max_size=5,
        )
    )
    metric = draw(st.sampled_from(["euclidean", "dot_product", "cosine"]))
    return {
        "parts": parts,
        "collection": {
            "vector_configs": [
                {"name": "emb", "dimension": 4, "metric": "cosine"},
                {"name": "alt", "dimension": 2, "metric": metric},
            ],
            "payload_indexes": [{"field_name": f, "type": t} for f, t in indexes],
        },
    }


# -- filters --------------------------------------------------------------------------------------------


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    field = draw(st.sampled_from(FIELDS))
    if field in ("kind", "tags", "absent"):
        op = draw(
            st.sampled_from(
                ["eq", "ne", "in", "nin", "contains", "starts_with", "ends_with", "regex", "text"]
            )
        )
    elif field == "document_id":
        op = draw(st.sampled_from(["eq", "ne", "in", "nin", "starts_with", "gt", "lte"]))
    elif field == "flag":
        op = draw(st.sampled_from(["eq", "ne", "exists", "is_null"]))
    else:  # n, f, meta.level, score
        op = draw(st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "exists", "is_null"]))
    if op in ("exists", "is_null"):
        value: Any = draw(st.booleans())
    elif field == "document_id":
        one = st.text("abxyz", min_size=1, max_size=2)
        value = draw(st.lists(one, min_size=1, max_size=3)) if op in ("in", "nin") else draw(one)
    elif field == "flag":
        value = draw(st.booleans())
    elif op == "regex":
        value = draw(st.sampled_from(["^r", "e$", "[gb]", "apple"]))
    elif op in ("starts_with", "ends_with", "text", "contains"):
        value = draw(st.sampled_from(["r", "RE", "e", "apple", "blue"]))
    elif field in ("kind", "tags", "absent"):
        value = draw(st.lists(keyword, min_size=1, max_size=2)) if op in ("in", "nin") else draw(keyword)
    elif field == "score":
        value = draw(st.sampled_from([-1.0, 0.0, 0.3, 0.5, 0.9, 1.0]))
        if op in ("in", "nin"):
            value = [value]
    else:
        value = draw(st.lists(number, min_size=1, max_size=2)) if op in ("in", "nin") else draw(number)
    return {"field": field, "operator": op, "value": value}


def trees(depth: int = 2) -> st.SearchStrategy[dict[str, Any]]:
    leaf = st.one_of(
        conditions(),
        st.builds(lambda k: {"kind": k}, keyword),  # the shorthand {"field": value}
    )
    if depth == 0:
        return st.builds(lambda c: {"AND": [c]}, leaf)
    item = st.one_of(leaf, trees(depth - 1))
    return st.builds(
        lambda op, items, case: {op: items, **({} if case is None else {"case_sensitive": case})},
        st.sampled_from(["AND", "OR", "NOT"]),
        st.lists(item, min_size=1, max_size=3),
        st.one_of(st.none(), st.booleans()),
    )


# -- stages ---------------------------------------------------------------------------------------------


def stage(stage_id: str, params: dict[str, Any], **config: Any) -> dict[str, Any]:
    return {"stage_id": stage_id, "parameters": params, **config}


@st.composite
def searches(draw: st.DrawFn) -> dict[str, Any]:
    one = st.one_of(
        st.builds(lambda v: {"feature_uri": EMB, "query": {"input_mode": "vector", "value": v}}, vec4),
        st.builds(lambda v: {"feature_uri": ALT, "query": {"input_mode": "vector", "value": v}}, vec2),
    )
    found = draw(st.lists(one, min_size=0 if draw(st.integers(0, 9)) == 0 else 1, max_size=2))
    for search in found:
        search["top_k"] = draw(st.integers(1, 25))
        if draw(st.integers(0, 4)) == 0:
            search["min_score"] = draw(st.sampled_from([-2.0, 0.0, 0.5]))
    params: dict[str, Any] = {"searches": found, "final_top_k": draw(st.integers(1, 25))}
    if len(found) == 2:
        params["fusion"] = draw(st.sampled_from(["rrf", "weighted", "dbsf", "max"]))
    if draw(st.integers(0, 4)) == 0:
        params["group_by"] = {
            "field": draw(st.sampled_from(["kind", "n", "flag", "tags", "absent"])),
            "max_per_group": draw(st.integers(1, 3)),
            "limit": draw(st.integers(1, 8)),
            "output_mode": draw(st.sampled_from(["first", "all", "flatten"])),
        }
    if draw(st.integers(0, 5)) == 0:
        keys = draw(
            st.lists(st.sampled_from(["kind", "n", "flag", "tags"]), min_size=1, max_size=2, unique=True)
        )
        params["facets"] = [{"key": key, "limit": draw(st.integers(1, 5))} for key in keys]
    config: dict[str, Any] = {}
    if draw(st.integers(0, 3)) == 0:
        config["post_filters"] = draw(trees(1))
    if draw(st.integers(0, 5)) == 0:
        config["pre_filters"] = draw(trees(1))
    return stage("feature_search", params, **config)


def attribute_filters() -> st.SearchStrategy[dict[str, Any]]:
    simple = st.builds(
        lambda c, ci: stage("attribute_filter", {**c, "case_insensitive": ci}), conditions(), st.booleans()
    )
    tree = st.builds(lambda t: stage("attribute_filter", {"conditions": t}), trees())
    return st.one_of(simple, tree)


sort_relevance = st.builds(
    lambda direction, missing, field: stage(
        "sort_relevance", {"direction": direction, "missing_score": missing, "score_field": field}
    ),
    st.sampled_from(["desc", "asc"]),
    st.sampled_from(["bottom", "top", "preserve"]),
    st.sampled_from(["score", "score", "score", "n", "scores.norm"]),
)
sort_attribute = st.builds(
    lambda field, direction, nulls_last: stage(
        "sort_attribute", {"field": field, "direction": direction, "nulls_last": nulls_last}
    ),
    st.sampled_from(["kind", "n", "f", "flag", "meta.level", "document_id", "score", "absent"]),
    st.sampled_from(["desc", "asc"]),
    st.booleans(),
)
limit = st.builds(
    lambda n, offset: stage("limit", {"limit": n, "offset": offset}), st.integers(1, 12), st.integers(0, 3)
)
group_by = st.builds(
    lambda field, most, mode: stage(
        "group_by", {"group_by_field": field, "max_per_group": most, "output_mode": mode}
    ),
    st.sampled_from(["kind", "n", "flag", "tags", "meta.level", "absent"]),
    st.integers(1, 3),
    st.sampled_from(["first", "all", "flatten"]),
)
deduplicate = st.one_of(
    st.builds(
        lambda fields, keep: stage("deduplicate", {"fields": fields, "keep": keep}),
        st.lists(st.sampled_from(["kind", "n", "flag", "tags"]), min_size=1, max_size=2, unique=True),
        st.sampled_from(["first", "last"]),
    ),
    st.builds(
        lambda threshold, keep: stage(
            "deduplicate", {"feature_uri": EMB, "threshold": threshold, "keep": keep}
        ),
        st.sampled_from([0.8, 0.95, 1.0]),
        st.sampled_from(["first", "last"]),
    ),
)
score_normalize = st.builds(
    lambda method, temperature, output: stage(
        "score_normalize", {"method": method, "temperature": temperature, "output_field": output}
    ),
    st.sampled_from(["min_max", "z_score", "softmax", "l2"]),
    st.sampled_from([0.5, 1.0, 2.0]),
    st.sampled_from([None, None, "scores.norm", "norm"]),
)
mmr = st.builds(
    lambda lam, top_k: stage("mmr", {"lambda": lam, "top_k": top_k, "diversity_feature_uri": EMB}),
    st.sampled_from([0.0, 0.5, 0.7, 1.0]),
    st.integers(1, 10),
)
sample = st.builds(
    lambda count, strategy, seed, keep: stage(
        "sample",
        {
            "count": count,
            "strategy": strategy,
            "seed": seed,
            "preserve_top_k": keep,
            **({"stratify_by": "kind"} if strategy == "stratified" else {}),
        },
    ),
    st.integers(1, 8),
    st.sampled_from(["random", "reservoir", "stratified"]),
    st.integers(0, 5),
    st.integers(0, 2),
)
LATER = st.one_of(
    attribute_filters(),
    attribute_filters(),
    sort_relevance,
    sort_attribute,
    limit,
    limit,
    group_by,
    deduplicate,
    score_normalize,
    mmr,
    sample,
    searches(),
)


SORTS = st.one_of(sort_relevance, sort_attribute)
# Shapes the rules are written for, so each is tried often: (stages right after the search, in order).
SHAPES = st.one_of(
    st.tuples(attribute_filters()),
    st.tuples(attribute_filters(), attribute_filters()),
    st.tuples(attribute_filters(), attribute_filters(), attribute_filters()),
    st.tuples(attribute_filters(), limit),
    st.tuples(limit),
    st.tuples(group_by),
    st.tuples(attribute_filters(), group_by),
    st.tuples(
        st.builds(
            lambda d, m: stage("sort_relevance", {"direction": d, "missing_score": m}),
            st.sampled_from(["desc", "desc", "asc"]),
            st.sampled_from(["bottom", "top", "preserve"]),
        )
    ),
    st.tuples(SORTS, SORTS),
    st.tuples(SORTS, SORTS, SORTS),
    st.tuples(SORTS, attribute_filters(), SORTS),
)


@st.composite
def pipelines(draw: st.DrawFn) -> list[dict[str, Any]]:
    head = list(draw(SHAPES)) if draw(st.integers(0, 3)) > 0 else []
    configs = [draw(searches()), *head, *draw(st.lists(LATER, max_size=5 - len(head)))]
    for config in configs[1:]:  # now and then a stage filters its own input or output
        if config["stage_id"] != "feature_search" and draw(st.integers(0, 9)) == 0:
            config[draw(st.sampled_from(["pre_filters", "post_filters"]))] = draw(trees(1))
    return [{"stage_name": f"s{i}-{c['stage_id']}", "config": c} for i, c in enumerate(configs)]


pages = st.one_of(
    st.just({}),
    st.builds(lambda n: {"limit": n}, st.integers(1, 12)),
    st.builds(
        lambda size, number: {"pagination": {"method": "offset", "page_size": size, "page_number": number}},
        st.integers(1, 6),
        st.integers(1, 3),
    ),
    st.builds(lambda n: {"pagination": {"method": "cursor", "limit": n}}, st.integers(1, 6)),
    st.builds(lambda n: {"pagination": {"method": "keyset", "limit": n}}, st.integers(1, 6)),
)


extras = st.fixed_dictionaries(
    {},
    optional={
        "return_vectors": st.booleans(),
        # a search costs 1 credit plus 0.001 per document: some of these stop a run partway
        "budget_limits": st.builds(
            lambda c: {"max_credits": c}, st.sampled_from([0.5, 1.01, 1.2, 2.05, 3.0])
        ),
    },
)


# -- the property ---------------------------------------------------------------------------------------


def counts(payload: dict[str, Any]) -> dict[str, tuple[int, int]]:
    stages = payload["stage_statistics"]["stages"]
    return {name: (s["input_count"], s["output_count"]) for name, s in stages.items()}


def credits(payload: dict[str, Any]) -> dict[str, Any]:
    stages = payload["stage_statistics"]["stages"]
    return {name: (s.get("metadata") or {}).get("credits") for name, s in stages.items()}


def check_summary(payload: dict[str, Any], stage_names: list[str]) -> None:
    """What an optimized run says about itself is about the user's own stages."""
    if not payload["optimization_applied"]:
        assert payload.get("optimization_summary") is None
        return
    summary = payload["optimization_summary"]
    assert set(summary) >= SUMMARY_KEYS, summary
    assert summary["original_stage_count"] == len(stage_names)
    assert 1 <= summary["optimized_stage_count"] <= summary["original_stage_count"]
    reduction = 100 * (len(stage_names) - summary["optimized_stage_count"]) / len(stage_names)
    assert abs(summary["stage_reduction_pct"] - reduction) < 0.1, summary
    assert summary["rules_applied"], summary
    assert len(set(summary["rules_applied"])) == len(summary["rules_applied"])
    assert {r["rule"] for r in summary["rewrites"]} == set(summary["rules_applied"]), summary
    for rewrite in summary["rewrites"]:
        assert set(rewrite["stages"]) <= set(stage_names) and rewrite["into"] in stage_names, rewrite
    if payload["status"] == "completed":
        for stats in payload["stage_statistics"]["stages"].values():
            moved = (stats.get("metadata") or {}).get("optimized")
            if moved is not None:
                assert moved["rule"] in summary["rules_applied"] and moved["merged_into"] in stage_names


def tell(to: Any, message: str) -> None:
    """A hypothesis note or event, when running under hypothesis (the example tests share run_both)."""
    if currently_in_test_context():
        to(message)


def run_both(client: TestClient, body: dict[str, Any], stage_names: list[str]) -> tuple[Any, Any]:
    """Runs ``body`` with the optimizer on and off; asserts they agree; returns both payloads."""
    tell(note, f"request: {json.dumps(body)}")
    on = client.post(f"{R}/execute", json={**body, "optimize": True})
    off = client.post(f"{R}/execute", json={**body, "optimize": False})
    assert on.status_code == off.status_code, (on.text, off.text)
    if on.status_code != 200:
        assert on.json() == off.json()
        tell(event, f"HTTP {on.status_code}")
        return None, None
    a, b = on.json(), off.json()
    tell(event, f"{a['status']}, optimized: {a['optimization_applied']}")
    for rule in (a.get("optimization_summary") or {}).get("rules_applied", []):
        tell(event, f"rule {rule}")
    assert a["status"] == b["status"], (a.get("error"), b.get("error"))
    assert a.get("error") == b.get("error") and a.get("failed_stage") == b.get("failed_stage")
    assert a.get("stages_completed") == b.get("stages_completed")
    assert a["documents"] == b["documents"], "the optimizer changed the documents"
    assert a["pagination"] == b["pagination"]
    assert counts(a) == counts(b), "the optimizer changed a stage's input or output count"
    assert credits(a) == credits(b), "the optimizer changed what a stage costs"
    assert abs(a["budget"]["credits_used"] - b["budget"]["credits_used"]) < 1e-6
    assert a.get("facets") == b.get("facets")
    assert list(a["stage_statistics"]["stages"]) == list(b["stage_statistics"]["stages"])
    if b["status"] == "completed":
        assert list(b["stage_statistics"]["stages"]) == stage_names
    assert b["optimization_applied"] is False and b.get("optimization_summary") is None
    check_summary(a, stage_names)
    assert on.headers.get("X-Cache") == off.headers.get("X-Cache") == "BYPASS"
    return a, b


ONE_DOC_CORPUS = {
    "parts": [[{"document_id": "x", "flag": True, "n": 1, "vectors": {"emb": [1.0, 0.0, 0.0, 0.0]}}]],
    "collection": {
        "vector_configs": [{"name": "emb", "dimension": 4, "metric": "cosine"}],
        "payload_indexes": [],
    },
}
LONE_SEARCH = stage(
    "feature_search",
    {
        "searches": [{"feature_uri": EMB, "query": {"input_mode": "vector", "value": [1, 0, 0, 0]}}],
        "final_top_k": 5,
    },
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(corpus=corpora(), stages=pipelines(), page=pages, filters=st.one_of(st.none(), trees(1)), extra=extras)
# Cases hypothesis found, kept so they run every time:
# post_filters reading score on the search, and a filter after it that is pushed down;
@example(
    corpus=ONE_DOC_CORPUS,
    stages=[
        {
            "stage_name": "search",
            "config": {
                **LONE_SEARCH,
                "post_filters": {"AND": [{"field": "score", "operator": "lt", "value": 0.3}]},
            },
        },
        {
            "stage_name": "flagged",
            "config": stage("attribute_filter", {"field": "flag", "operator": "eq", "value": True}),
        },
    ],
    page={},
    filters=None,
    extra={},
)
# a budget that stops the run before a sort that a later sort makes redundant.
@example(
    corpus=ONE_DOC_CORPUS,
    stages=[
        {"stage_name": "search", "config": LONE_SEARCH},
        {"stage_name": "by-score", "config": stage("sort_relevance", {"direction": "asc"})},
        {"stage_name": "by-n", "config": stage("sort_attribute", {"field": "n"})},
    ],
    page={},
    filters=None,
    extra={"budget_limits": {"max_credits": 1.02}},
)
def test_the_optimizer_never_changes_a_result(
    client: TestClient,
    corpus: dict[str, Any],
    stages: list[dict[str, Any]],
    page: dict[str, Any],
    filters: dict[str, Any] | None,
    extra: dict[str, Any],
) -> None:
    run = next(names)
    collections = [f"c{run}-{i}" for i in range(len(corpus["parts"]))]
    try:
        for name, docs in zip(collections, corpus["parts"], strict=True):
            created = client.post("/v1/collections", json={"collection_name": name, **corpus["collection"]})
            assert created.status_code == 200, created.text
            if docs:
                loaded = client.post(f"/v1/collections/{name}/documents/batch", json={"documents": docs})
                assert loaded.status_code == 200, loaded.text
        check_pipeline(client, collections, stages, {**page, **extra}, filters)
    finally:  # a few collections at a time: the server stays small however many examples run
        for name in collections:
            client.delete(f"/v1/collections/{name}")


def check_pipeline(
    client: TestClient,
    collections: list[str],
    stages: list[dict[str, Any]],
    page: dict[str, Any],
    filters: dict[str, Any] | None,
) -> None:
    body: dict[str, Any] = {"collection_identifiers": collections, "stages": stages, **page}
    if filters is not None:
        body["filters"] = filters
    stage_names = [s["stage_name"] for s in stages]
    on, _ = run_both(client, body, stage_names)

    if on is None or not on["pagination"].get("next_cursor"):
        return
    # cursor or keyset: the next page too (both runs gave the same cursor)
    pagination = dict(page["pagination"])
    pagination["cursor" if pagination["method"] == "cursor" else "after"] = on["pagination"]["next_cursor"]
    run_both(client, {**body, "pagination": pagination}, stage_names)


# -- each rule on its own: fires where it should, not elsewhere ------------------------------------------

RULE_DOCS = [
    {"document_id": f"r{i}", "kind": ["pet", "food", "finance"][i % 3], "year": 2010 + (i * 7) % 10,
     "vectors": {"emb": [1.0, 0.1 * i, 0.0, 0.0]}}
    for i in range(10)
]  # fmt: skip


def named(name: str, stage_id: str, **params: Any) -> dict[str, Any]:
    return {"stage_name": name, "config": {"stage_id": stage_id, "parameters": params}}


SEARCH = named(
    "search",
    "feature_search",
    searches=[{"feature_uri": EMB, "query": {"input_mode": "vector", "value": [1, 0, 0, 0]}, "top_k": 50}],
    final_top_k=50,
)
PETS = named("pets", "attribute_filter", field="kind", operator="eq", value="pet")
RECENT = named("recent", "attribute_filter", field="year", operator="gte", value=2014)
BY_YEAR = named("by-year", "sort_attribute", field="year", direction="desc")
BY_KIND = named("by-kind", "sort_attribute", field="kind", direction="asc")
BEST_FIRST = named("best-first", "sort_relevance", direction="desc")
WORST_FIRST = named("worst-first", "sort_relevance", direction="asc")
TOP3 = named("top3", "limit", limit=3)
PER_KIND = named("per-kind", "group_by", group_by_field="kind", max_per_group=2, output_mode="flatten")
SEARCH_WITH_POST_FILTER = {
    **SEARCH,
    "config": {**SEARCH["config"], "post_filters": {"AND": [{"kind": "pet"}]}},
}


def load_rule_corpus(client: TestClient) -> None:
    created = client.post(
        "/v1/collections",
        json={
            "collection_name": "rules",
            "vector_configs": [{"name": "emb", "dimension": 4, "metric": "cosine"}],
            "payload_indexes": [{"field_name": "kind", "type": "keyword"}],
        },
    )
    assert created.status_code == 200, created.text
    loaded = client.post("/v1/collections/rules/documents/batch", json={"documents": RULE_DOCS})
    assert loaded.status_code == 200, loaded.text


def rules_of(client: TestClient, stages: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    """The rules that fired for ``stages`` (after checking the run equals the unoptimized one)."""
    on, _ = run_both(
        client,
        {"collection_identifiers": ["rules"], "stages": stages, "limit": 50},
        [s["stage_name"] for s in stages],
    )
    assert on is not None and on["status"] == "completed", on
    summary = on.get("optimization_summary") or {}
    return list(summary.get("rules_applied", [])), on["stage_statistics"]["stages"]


@pytest.mark.parametrize(
    "rule, stages, merged",
    [
        ("push_down_filters", [SEARCH, PETS], {"pets": "search"}),
        ("push_down_filters", [SEARCH_WITH_POST_FILTER], {}),
        ("merge_consecutive_filters", [SEARCH, BY_YEAR, PETS, RECENT], {"recent": "pets"}),
        ("limit_push_down", [SEARCH, TOP3], {}),
        ("eliminate_redundant_sorts", [SEARCH, BEST_FIRST], {}),
        ("eliminate_redundant_sorts", [SEARCH, BY_KIND, BY_YEAR], {}),
        ("group_by_push_down", [SEARCH, PER_KIND], {}),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_rule_fires_where_it_applies(
    client: TestClient, rule: str, stages: list[dict[str, Any]], merged: dict[str, str]
) -> None:
    load_rule_corpus(client)
    rules, stats = rules_of(client, stages)
    assert rule in rules, rules
    for name, into in merged.items():
        assert stats[name]["metadata"]["optimized"] == {"rule": rule, "merged_into": into}, stats[name]


@pytest.mark.parametrize(
    "rule, stages",
    [
        ("merge_consecutive_filters", [SEARCH, BY_YEAR, PETS, TOP3, RECENT]),  # a limit between them
        ("group_by_push_down", [SEARCH, BY_YEAR, PER_KIND]),  # the groups' order follows the sort
        ("eliminate_redundant_sorts", [SEARCH, WORST_FIRST]),  # reverses the search's order
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_rule_does_not_fire_where_it_would_change_the_result(
    client: TestClient, rule: str, stages: list[dict[str, Any]]
) -> None:
    load_rule_corpus(client)
    rules, _ = rules_of(client, stages)
    assert rule not in rules, rules


def test_the_optimizer_is_off_per_request_and_server_wide(tmp_path: Path, embedder: TextEmbedder) -> None:
    body = {"collection_identifiers": ["rules"], "stages": [SEARCH, PETS, TOP3], "limit": 50}
    with served(settings_for(tmp_path / "on"), embedder) as (client, _):
        load_rule_corpus(client)
        optimized = client.post(f"{R}/execute", json=body).json()  # optimize defaults to true
        assert optimized["optimization_applied"] is True
        plain = client.post(f"{R}/execute", json={**body, "optimize": False}).json()
        assert plain["optimization_applied"] is False and plain.get("optimization_summary") is None
        assert plain["documents"] == optimized["documents"]
    with served(settings_for(tmp_path / "off", optimizer_enabled=False), embedder) as (client, _):
        load_rule_corpus(client)
        for request in (body, {**body, "optimize": True}):
            off = client.post(f"{R}/execute", json=request).json()
            assert off["optimization_applied"] is False and off.get("optimization_summary") is None
            assert [d["document_id"] for d in off["documents"]] == [
                d["document_id"] for d in optimized["documents"]
            ]
