"""Executions of every kind for the inspector's browser tests and screenshots, made over HTTP against a
real server: a hybrid search with lineage (``explain: true``), the same without, a budget stop, an ad-hoc
run, and (on a server started with ``siftline.testing.slow_stage``) a slow one to watch while it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

DENSE = "mixpeek://text_extractor@v1/all_minilm_l6_v2"
BM25 = "mixpeek://text_extractor@v1/bm25"
_TOPICS = {
    "pets": ["cats sleep most of the afternoon", "a kitten chases a red ball", "dogs need a daily walk",
             "how to groom a long-haired cat", "choosing food for an older dog", "a cat purrs when content"],
    "science": ["bone density falls with age", "vitamin D and calcium absorption", "sleep and memory in mice",
                "a new catalyst splits water", "the immune response to a vaccine", "gut bacteria and mood"],
    "finance": ["interest rates rose again", "index funds for beginners", "bond yields and inflation",
                "a startup raised its first round", "what a stock split means", "saving for retirement early"],
}  # fmt: skip
NOTES = [
    {"document_id": f"{topic[:3]}-{i:02d}-{j}", "title": text.capitalize(), "text": f"{text}, note {j}",
     "category": topic, "year": 2015 + (i * 3 + j) % 10}
    for topic, texts in _TOPICS.items() for i, text in enumerate(texts) for j in range(3)
]  # fmt: skip


def search_stage(name: str = "search", top_k: int = 20) -> dict[str, Any]:
    return {
        "stage_name": name,
        "config": {
            "stage_id": "feature_search",
            "parameters": {
                "searches": [
                    {"feature_uri": DENSE, "query": "{{INPUT.query}}", "top_k": 30},
                    {"feature_uri": BM25, "query": "{{INPUT.query}}", "top_k": 30},
                ],
                "fusion": "rrf",
                "final_top_k": top_k,
            },
        },
    }


TAIL = [
    {"stage_name": "recent", "config": {"stage_id": "attribute_filter",
     "parameters": {"field": "year", "operator": "gte", "value": 2016}}},
    {"stage_name": "normalize", "config": {"stage_id": "score_normalize", "parameters": {"method": "min_max"}}},
    {"stage_name": "newest", "config": {"stage_id": "sort_attribute",
     "parameters": {"field": "year", "direction": "desc"}}},
    {"stage_name": "top", "config": {"stage_id": "limit", "parameters": {"limit": 8}}},
]  # fmt: skip
SCHEMA = {"query": {"type": "text", "required": True}}


def slow_stages(seconds: float, waits: int = 3) -> list[dict[str, Any]]:
    """A search, then ``waits`` stages of ``test_sleep`` (registered by siftline.testing.slow_stage only)."""
    sleeps = [
        {
            "stage_name": f"wait-{i + 1}",
            "config": {"stage_id": "test_sleep", "parameters": {"seconds": seconds}},
        }
        for i in range(waits)
    ]
    return [search_stage("scan", 10), *sleeps]


@dataclass
class Seeded:
    retrievers: dict[str, str] = field(default_factory=dict)  # name → id
    executions: dict[str, str] = field(default_factory=dict)  # what → execution id


def _ok(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code != 200:
        raise RuntimeError(f"{what}: HTTP {response.status_code} {response.text[:300]}")
    return response.json()


def seed(http: httpx.Client, namespace: str = "default", slow: bool = False) -> Seeded:
    """Everything above in ``namespace`` (``http`` carries an Authorization header)."""
    headers = {"X-Namespace": namespace}
    out = Seeded()
    collection = {
        "collection_name": "notes",
        "feature_extractor": {"feature_extractor_name": "text_extractor", "version": "v1",
                              "input_mappings": {"text": ["title", "text"]}},
        "payload_indexes": [{"field_name": "category", "type": "keyword"}, {"field_name": "year", "type": "integer"}],
    }  # fmt: skip
    _ok(http.post("/v1/collections", json=collection, headers=headers), "collection")
    _ok(
        http.post("/v1/collections/notes/documents/batch", json={"documents": NOTES}, headers=headers),
        "documents",
    )
    retrievers: dict[str, dict[str, Any]] = {
        "hybrid-notes": {"stages": [search_stage(), *TAIL]},
        "capped": {"stages": [search_stage(), *TAIL], "budget_limits": {"max_credits": 2.06}},
    }
    if slow:
        retrievers["slow"] = {"stages": slow_stages(1.0)}
    for name, extra in retrievers.items():
        body = {"retriever_name": name, "collection_identifiers": ["notes"], "input_schema": SCHEMA, **extra}
        out.retrievers[name] = _ok(http.post("/v1/retrievers", json=body, headers=headers), name)[
            "retriever_id"
        ]
    runs: dict[str, tuple[str, dict[str, Any]]] = {
        "explained": ("hybrid-notes", {"inputs": {"query": "cats sleeping"}, "explain": True}),
        "plain": ("hybrid-notes", {"inputs": {"query": "interest rates"}}),
        "budget": ("capped", {"inputs": {"query": "vitamin D"}}),
    }
    for what, (name, body) in runs.items():
        found = _ok(
            http.post(f"/v1/retrievers/{out.retrievers[name]}/execute", json=body, headers=headers), what
        )
        out.executions[what] = found["execution_id"]
    adhoc = {"collection_identifiers": ["notes"], "inputs": {"query": "dog walks"}, "input_schema": SCHEMA,
             "stages": [search_stage("adhoc-search", 5)]}  # fmt: skip
    out.executions["adhoc"] = _ok(http.post("/v1/retrievers/execute", json=adhoc, headers=headers), "adhoc")[
        "execution_id"
    ]
    return out
