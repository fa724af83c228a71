"""feature_search semantics against real SQLite with hand-made documents and vectors.

Two collections: ``docs`` (8 documents: a 4-d cosine user vector ``emb``, MiniLM text vectors and BM25)
and ``extra`` (3 documents: ``emb`` and BM25, no MiniLM feature). The user vectors are seeded random
numbers, so their rankings are checked against numpy; the real model embeds only where a text query
must be embedded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from siftline.errors import BadRequestError, ValidationError
from siftline.features.embedder import TextEmbedder
from siftline.filters import Node, parse_filter
from siftline.models import Collection, DocumentWrite, Feature, PayloadIndex
from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.fusion import fuse
from siftline.pipeline.plan import build_plan
from siftline.pipeline.runner import run_plan
from siftline.pipeline.stages.base import PlanContext
from siftline.pipeline.stages.feature_search import FeatureSearch, FeatureSearchParams
from siftline.storage.sqlite.backend import SQLiteStorage
from siftline.testing import (
    assert_same_ranking,
    brute_force,
    fresh,
    make_write,
    new_collection,
    new_namespace,
)

EMB = Feature("emb", "dense", "vectors", "v1", 4, "cosine")
TEXT = Feature("all_minilm_l6_v2", "dense", "text_extractor", "v1", 384, "cosine", ("text",))
BM25 = Feature("bm25", "bm25", "text_extractor", "v1", None, None, ("text",))
EMB_URI, TEXT_URI, BM25_URI = EMB.uri, TEXT.uri, BM25.uri
INDEXES = (PayloadIndex("category", "keyword"), PayloadIndex("year", "integer"))

DOCS = [
    ("a1", "a cat sleeps on the warm mat", "pets", 2019),
    ("a2", "the kitten chased a red ball of yarn", "pets", 2020),
    ("a3", "dogs bark at the mailman every morning", "pets", 2021),
    ("a4", "stock markets fell sharply on monday", "finance", 2018),
    ("a5", "the central bank raised interest rates again", "finance", 2022),
    ("a6", "a cat and a dog became best friends", "pets", 2023),
    ("a7", "bond yields climbed after the jobs report", "finance", 2017),
    ("a8", "recipes for a quick weeknight dinner", "food", 2020),
]
EXTRA = [
    ("b1", "my cat ignores the new scratching post", "pets", 2024),
    ("b2", "pasta dinner ideas for busy families", "food", 2021),
    ("b3", "currency markets steady after the bank decision", "finance", 2019),
]
Q1 = [0.9, -0.2, 0.4, 0.1]
Q2 = [-0.3, 0.8, 0.1, -0.5]


@dataclass
class World:
    storage: SQLiteStorage
    embedder: TextEmbedder
    docs: Collection
    extra: Collection
    writes: list[DocumentWrite]
    extra_writes: list[DocumentWrite]

    def emb(self, doc_id: str) -> np.ndarray:
        return next(w.vectors["emb"] for w in self.writes if w.document_id == doc_id)

    def emb_of(self, ids: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        return {w.document_id: w.vectors["emb"] for w in self.writes if ids is None or w.document_id in ids}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, embedder: TextEmbedder) -> Iterator[World]:
    path: Path = tmp_path_factory.mktemp("feature_search")
    storage = SQLiteStorage(path / "siftline.db", path / "vectors")
    ns = new_namespace(storage, "fs")
    docs = new_collection(storage, ns, "docs", (EMB, TEXT, BM25), INDEXES)
    extra = new_collection(storage, ns, "extra", (EMB, BM25), INDEXES)
    rng = np.random.default_rng(7)

    def writes_for(collection: Collection, rows: list[tuple[str, str, str, int]]) -> list[DocumentWrite]:
        texts = embedder.embed([text for _, text, _, _ in rows]) if TEXT in collection.features else None
        out = []
        for i, (doc_id, text, category, year) in enumerate(rows):
            vectors = {"emb": rng.standard_normal(4).astype(np.float32)}
            if texts is not None:
                vectors[TEXT.name] = np.asarray(texts[i], dtype=np.float32)
            out.append(
                make_write(collection, doc_id, text=text, vectors=vectors, category=category, year=year)
            )
        return out

    writes, extra_writes = writes_for(docs, DOCS), writes_for(extra, EXTRA)
    storage.put_documents(docs, writes, replace=False)
    storage.put_documents(extra, extra_writes, replace=False)
    yield World(storage, embedder, fresh(storage, docs), fresh(storage, extra), writes, extra_writes)
    storage.close()


def context(world: World, collections: Sequence[Collection] | None = None) -> ExecutionContext:
    return ExecutionContext(
        storage=world.storage, embedder=world.embedder, collections=list(collections or [world.docs])
    )


def run(
    world: World,
    params: dict[str, Any],
    collections: Sequence[Collection] | None = None,
    search_filter: Node | None = None,
) -> tuple[list[Candidate], dict[str, Any]]:
    """The stage run directly (as the runner does, with ``search_filter`` already combined)."""
    ctx = context(world, collections)
    ctx.search_filter = search_filter
    out = FeatureSearch("search", FeatureSearchParams.model_validate(params)).run(ctx, [])
    return out, ctx.metadata


def one(feature_uri: str, query: Any, **search: Any) -> dict[str, Any]:
    return {"feature_uri": feature_uri, "query": query, **search}


def pairs(out: list[Candidate]) -> list[tuple[str, float]]:
    return [(c.document_id, c.score) for c in out]


def keyed(out: list[Candidate]) -> list[tuple[tuple[str, str], float]]:
    return [(c.key, c.score) for c in out]


def ids(out: list[Candidate]) -> list[str]:
    return [c.document_id for c in out]


# -- one search -----------------------------------------------------------------------------------------


def test_one_dense_search_keeps_raw_cosine_scores_in_exact_order(world: World) -> None:
    out, meta = run(world, {"searches": [one(EMB_URI, Q1)], "final_top_k": 100})

    assert_same_ranking(pairs(out), brute_force(world.emb_of(), np.array(Q1), "cosine", 100))
    assert len(out) == len(DOCS) and all(-1.0 <= c.score <= 1.0 for c in out)
    assert all(c.scores == {"search_0": c.score} for c in out)
    assert meta["fusion"] is None  # one search is not fused


def test_a_text_query_on_the_dense_text_feature_ranks_by_cosine_of_the_embeddings(world: World) -> None:
    out, meta = run(world, {"searches": [one(TEXT_URI, "a sleepy kitty")], "final_top_k": 100})

    text_vectors = {w.document_id: w.vectors[TEXT.name] for w in world.writes}
    query = world.embedder.embed(["a sleepy kitty"])[0]
    assert_same_ranking(pairs(out), brute_force(text_vectors, query, "cosine", 100))
    assert ids(out)[0] in ("a1", "a2") and meta["searches"][0]["path"] == "exact"


def test_result_documents_carry_their_fields_and_collection(world: World) -> None:
    out, _ = run(world, {"searches": [one(EMB_URI, Q1)], "final_top_k": 100})
    by_id = {c.document_id: c for c in out}
    for doc_id, text, category, year in DOCS:
        cand = by_id[doc_id]
        assert cand.collection_id == world.docs.collection_id
        assert cand.fields == {"text": text, "category": category, "year": year}
        assert cand.vectors is None  # not asked for


def test_a_bm25_search_returns_the_documents_containing_the_words(world: World) -> None:
    out, meta = run(world, {"searches": [one(BM25_URI, "cat")]})
    assert sorted(ids(out)) == ["a1", "a6"]
    assert all(c.score > 0 for c in out) and [c.score for c in out] == sorted(
        (c.score for c in out), reverse=True
    )
    assert meta["searches"][0]["path"] == "bm25" and meta["searches"][0]["kind"] == "bm25"

    out, _ = run(world, {"searches": [one(BM25_URI, "markets rates")]})
    assert sorted(ids(out)) == ["a4", "a5"]


def test_document_mode_searches_with_the_stored_vector_of_that_document(world: World) -> None:
    query = {"input_mode": "document", "document_ref": {"document_id": "a3", "collection_id": "docs"}}
    out, _ = run(world, {"searches": [one(EMB_URI, query)], "final_top_k": 100})

    assert ids(out)[0] == "a3" and out[0].score == pytest.approx(1.0, abs=1e-5)
    assert_same_ranking(pairs(out), brute_force(world.emb_of(), world.emb("a3"), "cosine", 100))


def test_document_mode_with_an_unknown_document_fails_naming_it(world: World) -> None:
    query = {"input_mode": "document", "document_ref": {"document_id": "nope"}}
    with pytest.raises(BadRequestError, match="nope"):
        run(world, {"searches": [one(EMB_URI, query)]})


def test_document_mode_without_a_collection_finds_the_document_among_the_searched_ones(world: World) -> None:
    query = {"input_mode": "document", "document_ref": {"document_id": "a3"}}
    out, _ = run(world, {"searches": [one(EMB_URI, query)], "final_top_k": 100}, [world.docs, world.extra])
    assert ids(out)[0] == "a3" and len(out) == len(DOCS) + len(EXTRA)


def test_min_score_drops_the_hits_scoring_below_it(world: World) -> None:
    reference = brute_force(world.emb_of(), np.array(Q1), "cosine", 100)
    threshold = (reference[2][1] + reference[3][1]) / 2  # between the 3rd and the 4th hit
    out, meta = run(world, {"searches": [one(EMB_URI, Q1, min_score=threshold)], "final_top_k": 100})

    assert_same_ranking(pairs(out), reference[:3])
    assert all(c.score >= threshold for c in out)
    assert meta["searches"][0]["results"] == 3 and meta["searches"][0]["below_min_score"] == len(DOCS) - 3


def test_top_k_limits_each_search(world: World) -> None:
    out, meta = run(world, {"searches": [one(EMB_URI, Q1, top_k=3)], "final_top_k": 100})
    assert_same_ranking(pairs(out), brute_force(world.emb_of(), np.array(Q1), "cosine", 3))
    assert meta["searches"][0]["top_k"] == 3 and meta["candidates_examined"] == 3


def test_final_top_k_cuts_the_result(world: World) -> None:
    search = {"searches": [one(EMB_URI, Q1), one(BM25_URI, "cat dog kitten")], "fusion": "rrf"}
    full, _ = run(world, {**search, "final_top_k": 100})
    cut, meta = run(world, {**search, "final_top_k": 3})
    assert keyed(cut) == keyed(full)[:3] and meta["final_top_k"] == 3
    assert meta["candidates_examined"] == len(DOCS)  # examined before the cut


# -- several searches -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["rrf", "weighted", "dbsf", "max"])
def test_fusion_of_two_searches_equals_fuse_on_the_searches_alone(world: World, method: str) -> None:
    dense = one(EMB_URI, Q1, top_k=6, weight=2.0)
    lexical = one(BM25_URI, "cat dog kitten bank", weight=1.0)
    legs = [keyed(run(world, {"searches": [s], "final_top_k": 100})[0]) for s in (dense, lexical)]

    out, meta = run(world, {"searches": [dense, lexical], "fusion": method, "rrf_k": 10, "final_top_k": 100})

    expected = fuse(method, legs, [2.0, 1.0], rrf_k=10)
    assert [k for k, _ in keyed(out)] == [k for k, _ in expected]
    assert [s for _, s in keyed(out)] == pytest.approx([s for _, s in expected], abs=1e-12)
    assert meta["fusion"] == method and len(meta["searches"]) == 2
    assert meta["candidates_examined"] == len({k for leg in legs for k, _ in leg})
    leg_scores = [dict(leg) for leg in legs]
    for cand in out:
        assert cand.scores == {f"search_{i}": s[cand.key] for i, s in enumerate(leg_scores) if cand.key in s}


@pytest.mark.parametrize("weights", [(1.0, 0.0), (0.0, 1.0)])
def test_weighted_fusion_with_one_zero_weight_keeps_the_other_searchs_order(
    world: World, weights: tuple[float, float]
) -> None:
    searches = [one(EMB_URI, Q1, weight=weights[0]), one(EMB_URI, Q2, weight=weights[1])]
    out, _ = run(world, {"searches": searches, "fusion": "weighted", "final_top_k": 100})

    kept = Q1 if weights[0] else Q2
    assert ids(out) == [d for d, _ in brute_force(world.emb_of(), np.array(kept), "cosine", 100)]


def test_rrf_is_the_default_fusion(world: World) -> None:
    searches = [one(EMB_URI, Q1), one(EMB_URI, Q2)]
    legs = [keyed(run(world, {"searches": [s], "final_top_k": 100})[0]) for s in searches]
    out, meta = run(world, {"searches": searches, "final_top_k": 100})
    assert keyed(out) == fuse("rrf", legs, [1.0, 1.0], rrf_k=60) and meta["fusion"] == "rrf"


# -- empty queries --------------------------------------------------------------------------------------


@pytest.mark.parametrize("empty", ["", "   "])
def test_on_empty_skip_leaves_an_empty_query_out(world: World, empty: str) -> None:
    searches = [one(BM25_URI, empty, on_empty="skip"), one(EMB_URI, Q1)]
    out, meta = run(world, {"searches": searches, "final_top_k": 100})

    alone, _ = run(world, {"searches": [one(EMB_URI, Q1)], "final_top_k": 100})
    assert pairs(out) == pairs(alone)  # the remaining search keeps its raw scores
    assert meta["searches"][0]["skipped"] == "empty query" and meta["fusion"] is None


def test_every_search_skipped_gives_no_results_without_an_error(world: World) -> None:
    out, meta = run(world, {"searches": [one(BM25_URI, "", on_empty="skip")]})
    assert out == [] and meta["candidates_examined"] == 0


def test_on_empty_error_fails_naming_the_search(world: World) -> None:
    with pytest.raises(BadRequestError, match=r"Search 1 .*empty query.*on_empty"):
        run(world, {"searches": [one(EMB_URI, Q1), one(BM25_URI, " ")]})


# -- lexical --------------------------------------------------------------------------------------------


def test_lexical_on_the_dense_text_feature_searches_its_bm25_index(world: World) -> None:
    out, meta = run(world, {"searches": [one(TEXT_URI, "cat markets", lexical=True)]})
    bm25, _ = run(world, {"searches": [one(BM25_URI, "cat markets")]})

    assert pairs(out) == pairs(bm25) and sorted(ids(out)) == ["a1", "a4", "a6"]
    assert meta["searches"][0]["kind"] == "bm25" and meta["searches"][0]["path"] == "bm25"


# -- filters --------------------------------------------------------------------------------------------

PETS_SINCE_2020 = {"a2", "a3", "a6"}


def test_a_search_filter_restricts_the_search_before_top_k(world: World) -> None:
    flt = parse_filter(
        {"AND": [{"field": "category", "value": "pets"}, {"field": "year", "operator": "gte", "value": 2020}]}
    )
    out, meta = run(world, {"searches": [one(EMB_URI, Q1, top_k=2)], "final_top_k": 100}, search_filter=flt)

    assert_same_ranking(pairs(out), brute_force(world.emb_of(PETS_SINCE_2020), np.array(Q1), "cosine", 2))
    assert meta["filtered"] is True


def test_request_filters_and_stage_pre_filters_restrict_every_search(world: World) -> None:
    stages = [
        {
            "stage_name": "hybrid",
            "config": {
                "stage_id": "feature_search",
                "parameters": {
                    "searches": [one(EMB_URI, Q1, top_k=2), one(BM25_URI, "cat dog kitten bark", top_k=2)],
                    "final_top_k": 100,
                },
                "pre_filters": {"AND": [{"field": "year", "operator": "gte", "value": 2020}]},
            },
        }
    ]
    ctx = context(world)
    ctx.filters = parse_filter({"category": "pets"})
    result = run_plan(build_plan(stages, [world.docs], {}), ctx)

    assert result.status == "completed", result.error
    assert set(ids(result.documents)) <= PETS_SINCE_2020
    dense = [c for c in result.documents if "search_0" in c.scores]
    lexical = [c for c in result.documents if "search_1" in c.scores]
    assert len(dense) == 2 and len(lexical) == 2  # filtered inside each search, so each still fills top_k
    expected_dense = brute_force(world.emb_of(PETS_SINCE_2020), np.array(Q1), "cosine", 2)
    assert sorted(c.document_id for c in dense) == sorted(d for d, _ in expected_dense)


def test_filter_only_mode_returns_the_matching_documents(world: World) -> None:
    finance = parse_filter({"category": "finance"})
    out, meta = run(world, {"searches": []}, search_filter=finance)
    assert ids(out) == ["a4", "a5", "a7"] and all(c.score == 1.0 for c in out)
    assert meta["mode"] == "filter_only" and meta["filtered"] is True

    out, _ = run(world, {}, [world.docs, world.extra], search_filter=finance)
    assert ids(out) == ["a4", "a5", "a7", "b3"]


def test_filter_only_mode_respects_final_top_k(world: World) -> None:
    out, _ = run(world, {"final_top_k": 3})
    assert len(out) == 3 and set(ids(out)) <= {d for d, *_ in DOCS}


# -- facets and metadata --------------------------------------------------------------------------------


def test_facets_count_values_over_every_examined_document(world: World) -> None:
    params = {
        "searches": [one(EMB_URI, Q1)],
        "final_top_k": 2,
        "facets": [{"key": "category"}, {"key": "year"}],
    }
    out, meta = run(world, params)

    assert len(out) == 2
    category, year = meta["facets"]
    assert category == {
        "key": "category",
        "values": [
            {"value": "pets", "count": 4},
            {"value": "finance", "count": 3},
            {"value": "food", "count": 1},
        ],
    }
    assert {v["value"]: v["count"] for v in year["values"]}[2020] == 2 and sum(
        v["count"] for v in year["values"]
    ) == 8


def test_facets_count_only_the_filtered_documents(world: World) -> None:
    params = {"searches": [one(EMB_URI, Q1)], "facets": [{"key": "category", "limit": 1}]}
    _, meta = run(world, params, search_filter=parse_filter({"year": 2020}))  # a2 (pets) and a8 (food)
    assert meta["facets"] == [{"key": "category", "values": [{"value": "food", "count": 1}]}]  # ties by value


def test_metadata_names_each_searchs_path_and_the_candidates_examined(world: World) -> None:
    searches = [one(EMB_URI, Q1, top_k=3), one(BM25_URI, "cat")]
    _, meta = run(world, {"searches": searches})
    dense, lexical = meta["searches"]
    assert (dense["path"], dense["feature_uri"], dense["results"]) == ("exact", EMB_URI, 3)
    assert (lexical["path"], lexical["feature_uri"], lexical["results"]) == ("bm25", BM25_URI, 2)
    top3 = {d for d, _ in brute_force(world.emb_of(), np.array(Q1), "cosine", 3)}
    assert meta["candidates_examined"] == len(top3 | {"a1", "a6"})
    assert meta["filtered"] is False


# -- several collections --------------------------------------------------------------------------------


def test_a_feature_only_some_collections_have_searches_those(world: World) -> None:
    both = [world.docs, world.extra]
    out, _ = run(world, {"searches": [one(TEXT_URI, "cat")], "final_top_k": 100}, both)
    assert {c.collection_id for c in out} == {world.docs.collection_id} and len(out) == len(DOCS)

    out, _ = run(world, {"searches": [one(BM25_URI, "cat")]}, both)
    assert sorted((c.collection_id == world.extra.collection_id, c.document_id) for c in out) == [
        (False, "a1"),
        (False, "a6"),
        (True, "b1"),
    ]


def test_a_search_over_two_collections_ranks_their_hits_together(world: World) -> None:
    out, _ = run(world, {"searches": [one(EMB_URI, Q1)], "final_top_k": 100}, [world.docs, world.extra])

    everything = world.emb_of() | {w.document_id: w.vectors["emb"] for w in world.extra_writes}
    assert_same_ranking(pairs(out), brute_force(everything, np.array(Q1), "cosine", 100))
    assert {c.document_id: c.collection_id for c in out}["b2"] == world.extra.collection_id


def test_creation_accepts_a_feature_some_collections_have_and_refuses_one_none_has(world: World) -> None:
    params = FeatureSearchParams.model_validate({"searches": [one(TEXT_URI, "cat")]})
    FeatureSearch.check(params, PlanContext([world.docs, world.extra]), ["parameters"])
    with pytest.raises(ValidationError) as caught:
        FeatureSearch.check(params, PlanContext([world.extra]), ["parameters"])
    assert caught.value.errors[0]["loc"] == ["parameters", "searches", 0, "feature_uri"]
    assert EMB_URI in caught.value.message and BM25_URI in caught.value.message
