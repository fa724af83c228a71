"""Acceptance 1 of issue 10: the result cache never serves a stale result.

A hypothesis state machine drives one in-process server. Each run gets two fresh collections — ``a``
(text extractor for BM25, plus a 4-d user vector ``emb``) and ``b`` (only ``emb``) — and seven saved
retrievers with ``cache_config`` over them (vector, BM25 and hybrid searches; filters, sorts, limits
and a group_by, some of which the optimizer evaluates in storage). It then interleaves random inserts
(single and batch), PUTs, merge PATCHes, deletes and collection PATCHes on both collections with
executions of the saved retrievers and of the same pipelines ad hoc (with ``cache_config``), with
random inputs, request filters and pagination. One step repeats the previous request as it was (and
an execution is often repeated right away), so hits happen.

After every execution:
- every returned document is live and carries exactly its current fields (a model of both collections
  is kept), and where the retriever's answer is easy to compute its ``pagination.total`` is checked;
- after every ``X-Cache: HIT``, the same request with ``skip_cache: true`` (a ``BYPASS``) returns the
  same ``documents`` and ``pagination``.
At the end, the number of hits must be well above zero, so the property cannot pass vacuously.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

R = "/v1/retrievers"
EMB = "mixpeek://vectors@v1/emb"
BM25 = "mixpeek://text_extractor@v1/bm25"
CACHE = {"enabled": True, "ttl_seconds": 3600}
WORDS = ["apple", "river", "stone", "cloud", "ember"]
CATEGORIES = ["red", "green", "blue"]
POOL = [f"d{i}" for i in range(7)]
SYSTEM_KEYS = {"document_id", "collection_id", "score", "_internal", "vectors", "scores"}
SCHEMA = {
    "v": {"type": "array", "default": [1, 0, 0, 0]},
    "cat": {"type": "string", "default": "red"},
    "q": {"type": "text", "default": "apple"},
}


def vector_search(final_top_k: int = 50) -> dict[str, Any]:
    return {
        "stage_name": "search",
        "stage_type": "filter",
        "config": {
            "stage_id": "feature_search",
            "parameters": {
                "searches": [
                    {
                        "feature_uri": EMB,
                        "query": {"input_mode": "vector", "value": "{{ INPUT.v }}"},
                        "top_k": 50,
                    }
                ],
                "final_top_k": final_top_k,
            },
        },
    }


def text_search(hybrid: bool) -> dict[str, Any]:
    searches = [{"feature_uri": BM25, "query": {"input_mode": "text", "value": "{{ INPUT.q }}"}, "top_k": 50}]
    if hybrid:
        searches.append(
            {"feature_uri": EMB, "query": {"input_mode": "vector", "value": "{{ INPUT.v }}"}, "top_k": 50}
        )
    return {
        "stage_name": "search",
        "stage_type": "filter",
        "config": {
            "stage_id": "feature_search",
            "parameters": {"searches": searches, "fusion": "rrf", "final_top_k": 50},
        },
    }


SAME_CATEGORY = {
    "stage_name": "same-category",
    "stage_type": "filter",
    "config": {
        "stage_id": "attribute_filter",
        "parameters": {
            "field": "category",
            "operator": "eq",
            "value": {"type": "dynamic", "field": "inputs.cat"},
        },
    },
}
NEWEST_THREE = [
    {
        "stage_name": "newest",
        "stage_type": "sort",
        "config": {"stage_id": "sort_attribute", "parameters": {"field": "year", "direction": "desc"}},
    },
    {
        "stage_name": "three",
        "stage_type": "reduce",
        "config": {"stage_id": "limit", "parameters": {"limit": 3}},
    },
]


RED = {
    "stage_name": "red",
    "stage_type": "filter",
    "config": {
        "stage_id": "attribute_filter",
        "parameters": {"field": "category", "operator": "eq", "value": "red"},
    },
}
TOP_FOUR = {
    "stage_name": "four",
    "stage_type": "reduce",
    "config": {"stage_id": "limit", "parameters": {"limit": 4}},
}
TWO_PER_CATEGORY = {
    "stage_name": "two-each",
    "stage_type": "reduce",
    "config": {
        "stage_id": "group_by",
        "parameters": {"group_by_field": "category", "max_per_group": 2, "output_mode": "flatten"},
    },
}


@dataclass(frozen=True)
class Kind:
    """A pipeline, the collections it targets, and the total it must report (None: not modelled)."""

    collections: tuple[str, ...]
    stages: list[dict[str, Any]]
    cap: int | None = None  # a limit stage at the end
    by_category: bool = False  # keeps the documents of the input category
    only_red: bool = False  # keeps the red documents
    per_category: int | None = None  # keeps this many documents of each category
    modelled: bool = True


KINDS = {
    "vec": Kind(("a",), [vector_search()]),
    "both-category": Kind(("a", "b"), [vector_search(), SAME_CATEGORY], by_category=True),
    "newest": Kind(("b",), [vector_search(), *NEWEST_THREE], cap=3),
    "words": Kind(("a",), [text_search(hybrid=False)], modelled=False),
    "hybrid": Kind(("a",), [text_search(hybrid=True), SAME_CATEGORY], modelled=False),
    # plain stages right after a search: the optimizer evaluates them in storage (filter, limit, group_by)
    "red-top": Kind(("a", "b"), [vector_search(), RED, TOP_FOUR], cap=4, only_red=True),
    "two-each": Kind(("a", "b"), [vector_search(), TWO_PER_CATEGORY], per_category=2),
}

vectors = (
    st.lists(st.integers(-3, 3), min_size=4, max_size=4).filter(any).map(lambda v: [float(x) for x in v])
)
texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join)


def fields_for(collection: str) -> st.SearchStrategy[dict[str, Any]]:
    """A document body without document_id: user fields (some optional) and its vector."""
    optional = {"title": st.sampled_from(WORDS), "tags": st.lists(st.sampled_from(CATEGORIES), max_size=2)}
    required: dict[str, Any] = {
        "category": st.sampled_from(CATEGORIES),
        "year": st.integers(2000, 2004),
        "vectors": st.fixed_dictionaries({"emb": vectors}),
    }
    if collection == "a":
        required["text"] = texts
    return st.fixed_dictionaries(required, optional=optional)


def patches_for(collection: str) -> st.SearchStrategy[dict[str, Any]]:
    choices = [
        st.fixed_dictionaries({"category": st.sampled_from(CATEGORIES)}),
        st.fixed_dictionaries({"year": st.integers(2000, 2004)}),
        st.fixed_dictionaries({"title": st.one_of(st.none(), st.sampled_from(WORDS))}),
        st.fixed_dictionaries({"tags": st.none()}),
        st.fixed_dictionaries({"vectors": st.fixed_dictionaries({"emb": vectors})}),
        st.fixed_dictionaries(
            {"category": st.sampled_from(CATEGORIES), "vectors": st.fixed_dictionaries({"emb": vectors})}
        ),
    ]
    if collection == "a":
        choices.append(st.fixed_dictionaries({"text": texts}))
    return st.one_of(choices)


pages = st.one_of(
    st.just({}),
    st.builds(lambda n: {"limit": n}, st.integers(1, 8)),
    st.builds(
        lambda size, number: {"pagination": {"method": "offset", "page_size": size, "page_number": number}},
        st.integers(1, 4),
        st.integers(1, 3),
    ),
    st.builds(lambda n: {"pagination": {"method": "cursor", "limit": n}}, st.integers(1, 4)),
    st.builds(lambda n: {"pagination": {"method": "keyset", "limit": n}}, st.integers(1, 4)),
)
request_filters = st.one_of(
    st.none(),
    st.builds(lambda y: {"AND": [{"field": "year", "operator": "gte", "value": y}]}, st.integers(2000, 2004)),
    st.builds(
        lambda cats: {"AND": [{"field": "category", "operator": "in", "value": cats}]},
        st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=2, unique=True),
    ),
)
collection_changes = st.one_of(
    st.fixed_dictionaries({"description": st.sampled_from(WORDS)}),
    st.fixed_dictionaries({"metadata": st.fixed_dictionaries({"owner": st.sampled_from(WORDS)})}),
    st.sampled_from(
        [
            {"payload_indexes": [{"field_name": "year", "type": "integer"}]},
            {"payload_indexes": [{"field_name": "category", "type": "keyword"}]},
            {"payload_indexes": []},
        ]
    ),
)


def merge_patch(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(current)
    for key, value in patch.items():
        if key == "vectors":
            out["vectors"] = {**out.get("vectors", {}), **value}
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def matches(doc: dict[str, Any], filters: dict[str, Any] | None) -> bool:
    if filters is None:
        return True
    condition = filters["AND"][0]
    if condition["operator"] == "gte":
        return bool(doc["year"] >= condition["value"])
    return doc["category"] in condition["value"]


@dataclass
class Tally:
    executions: int = 0
    hits: int = 0
    kinds_hit: set[str] = field(default_factory=set)


def test_a_cached_result_always_equals_a_fresh_one(client: TestClient) -> None:
    tally = Tally()
    runs = itertools.count()

    class CacheFreshness(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            n = next(runs)
            self.names = {"a": f"a{n}", "b": f"b{n}"}
            self.live: dict[str, dict[str, dict[str, Any]]] = {"a": {}, "b": {}}
            self.collection_of: dict[str, str] = {}
            for key, name in self.names.items():
                body: dict[str, Any] = {
                    "collection_name": name,
                    "vector_configs": [{"name": "emb", "dimension": 4, "metric": "cosine"}],
                }
                if key == "a":
                    body["feature_extractor"] = {
                        "feature_extractor_name": "text_extractor",
                        "version": "v1",
                        "input_mappings": {"text": "text"},
                    }
                    body["payload_indexes"] = [{"field_name": "category", "type": "keyword"}]
                created = self.ok(client.post("/v1/collections", json=body))
                self.collection_of[created["collection_id"]] = key
            self.retrievers: dict[str, str] = {}
            for kind, spec in KINDS.items():
                created = self.ok(
                    client.post(R, json={"retriever_name": f"{kind}-{n}", **self.pipeline(spec)})
                )
                self.retrievers[kind] = created["retriever_id"]
            self.last: tuple[str, str, dict[str, Any]] | None = None

        # -- helpers ---------------------------------------------------------------------------------

        @staticmethod
        def ok(response: Any) -> dict[str, Any]:
            assert response.status_code == 200, response.text
            return dict(response.json())

        def pipeline(self, spec: Kind) -> dict[str, Any]:
            return {
                "collection_identifiers": [self.names[c] for c in spec.collections],
                "input_schema": SCHEMA,
                "stages": copy.deepcopy(spec.stages),
                "cache_config": CACHE,
            }

        def docs_path(self, collection: str) -> str:
            return f"/v1/collections/{self.names[collection]}/documents"

        def missing(self, collection: str) -> list[str]:
            return [d for d in POOL if d not in self.live[collection]]

        def expected_total(self, kind: str, inputs: dict[str, Any], request: dict[str, Any]) -> int | None:
            spec = KINDS[kind]
            if not spec.modelled:
                return None
            docs = [d for c in spec.collections for d in self.live[c].values()]
            docs = [d for d in docs if matches(d, request.get("filters"))]
            if spec.by_category:
                docs = [d for d in docs if d["category"] == inputs["cat"]]
            if spec.only_red:
                docs = [d for d in docs if d["category"] == "red"]
            if spec.per_category is not None:
                found = Counter(d["category"] for d in docs)
                return sum(min(spec.per_category, n) for n in found.values())
            return len(docs) if spec.cap is None else min(spec.cap, len(docs))

        def check_current(self, kind: str, payload: dict[str, Any], request: dict[str, Any]) -> None:
            """Every document returned is live with exactly its current fields; totals where modelled."""
            assert payload["status"] == "completed", payload.get("error")
            for doc in payload["documents"]:
                collection = self.collection_of[doc["collection_id"]]
                current = self.live[collection].get(doc["document_id"])
                assert current is not None, f"{doc['document_id']} was deleted from {collection}"
                got = {k: v for k, v in doc.items() if k not in SYSTEM_KEYS}
                want = {k: v for k, v in current.items() if k != "vectors"}
                assert got == want, f"{collection}/{doc['document_id']}: returned {got}, current {want}"
            total = self.expected_total(kind, request.get("inputs", {}), request)
            if total is not None:
                assert payload["pagination"]["total"] == total, (payload["pagination"], total)

        def run(self, kind: str, path: str, body: dict[str, Any]) -> None:
            self.last = (kind, path, body)
            response = client.post(path, json=body)
            payload = self.ok(response)
            tally.executions += 1
            verdict = response.headers.get("X-Cache")
            assert verdict in ("HIT", "MISS"), verdict
            assert payload["cache_hit"] is (verdict == "HIT")
            self.check_current(kind, payload, body)
            if verdict != "HIT":
                return
            tally.hits += 1
            tally.kinds_hit.add(kind)
            fresh = client.post(path, json={**body, "skip_cache": True})
            fresh_payload = self.ok(fresh)
            assert fresh.headers.get("X-Cache") == "BYPASS" and fresh_payload["cache_hit"] is False
            assert payload["documents"] == fresh_payload["documents"], "a stale result was served from cache"
            assert payload["pagination"] == fresh_payload["pagination"], "stale pagination served from cache"

        # -- set-up ----------------------------------------------------------------------------------

        @initialize(
            a=st.dictionaries(st.sampled_from(POOL), fields_for("a"), min_size=1, max_size=4),
            b=st.dictionaries(st.sampled_from(POOL), fields_for("b"), min_size=1, max_size=4),
        )
        def load(self, a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> None:
            for collection, docs in (("a", a), ("b", b)):
                batch = [{"document_id": d, **copy.deepcopy(body)} for d, body in docs.items()]
                self.ok(client.post(f"{self.docs_path(collection)}/batch", json={"documents": batch}))
                self.live[collection].update(copy.deepcopy(docs))

        # -- writes ----------------------------------------------------------------------------------

        @rule(collection=st.sampled_from(["a", "b"]), data=st.data())
        def insert(self, collection: str, data: st.DataObject) -> None:
            free = self.missing(collection)
            if not free:
                return
            chosen = data.draw(st.lists(st.sampled_from(free), min_size=1, max_size=2, unique=True), "ids")
            docs = {d: data.draw(fields_for(collection), f"fields of {d}") for d in chosen}
            if len(docs) == 1:
                [(doc_id, body)] = docs.items()
                self.ok(client.post(self.docs_path(collection), json={"document_id": doc_id, **body}))
            else:
                batch = [{"document_id": d, **body} for d, body in docs.items()]
                self.ok(client.post(f"{self.docs_path(collection)}/batch", json={"documents": batch}))
            self.live[collection].update(copy.deepcopy(docs))

        @rule(collection=st.sampled_from(["a", "b"]), data=st.data())
        def replace(self, collection: str, data: st.DataObject) -> None:
            if not self.live[collection]:
                return
            doc_id = data.draw(st.sampled_from(sorted(self.live[collection])), "id")
            body = data.draw(fields_for(collection), "replacement")
            self.ok(client.put(f"{self.docs_path(collection)}/{doc_id}", json=body))
            self.live[collection][doc_id] = copy.deepcopy(body)

        @rule(collection=st.sampled_from(["a", "b"]), data=st.data())
        def patch(self, collection: str, data: st.DataObject) -> None:
            if not self.live[collection]:
                return
            doc_id = data.draw(st.sampled_from(sorted(self.live[collection])), "id")
            change = data.draw(patches_for(collection), "patch")
            self.ok(client.patch(f"{self.docs_path(collection)}/{doc_id}", json=change))
            self.live[collection][doc_id] = merge_patch(self.live[collection][doc_id], change)

        @rule(collection=st.sampled_from(["a", "b"]), data=st.data())
        def delete(self, collection: str, data: st.DataObject) -> None:
            if not self.live[collection]:
                return
            doc_id = data.draw(st.sampled_from(sorted(self.live[collection])), "id")
            self.ok(client.delete(f"{self.docs_path(collection)}/{doc_id}"))
            del self.live[collection][doc_id]

        @rule(collection=st.sampled_from(["a", "b"]), change=collection_changes)
        def patch_collection(self, collection: str, change: dict[str, Any]) -> None:
            self.ok(client.patch(f"/v1/collections/{self.names[collection]}", json=change))

        # -- executions ------------------------------------------------------------------------------

        @rule(
            kind=st.sampled_from(sorted(KINDS)),
            adhoc=st.booleans(),
            v=vectors,
            cat=st.sampled_from(CATEGORIES),
            q=st.sampled_from(WORDS),
            page=pages,
            filters=request_filters,
            twice=st.booleans(),
        )
        def execute(
            self,
            kind: str,
            adhoc: bool,
            v: list[float],
            cat: str,
            q: str,
            page: dict[str, Any],
            filters: dict[str, Any] | None,
            twice: bool,
        ) -> None:
            body: dict[str, Any] = {"inputs": {"v": v, "cat": cat, "q": q}, **page}
            if filters is not None:
                body["filters"] = filters
            if adhoc:
                self.run(kind, f"{R}/execute", {**self.pipeline(KINDS[kind]), **body})
            else:
                self.run(kind, f"{R}/{self.retrievers[kind]}/execute", body)
            if twice:  # right away, nothing written in between: the answer can come from the cache
                self.repeat()

        @precondition(lambda self: self.last is not None)
        @rule()
        def repeat(self) -> None:
            assert self.last is not None
            self.run(*self.last)

    run_state_machine_as_test(
        CacheFreshness,
        settings=settings(
            max_examples=35,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        ),
    )
    assert tally.executions >= 50, tally
    assert tally.hits >= 15, f"too few cache hits for the property to mean anything: {tally}"
    assert len(tally.kinds_hit) >= 4, tally
    print(
        f"cache freshness: {tally.executions} executions, {tally.hits} hits, each equal to a skip_cache run"
    )
