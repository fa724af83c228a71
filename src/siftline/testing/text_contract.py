"""The BM25 contract: every backend's ``text_search`` gives exactly the scores of one formula.

Subclass :class:`TextSearchContract` in a test module and provide the fixture ``open_storage`` (as for
:class:`~siftline.testing.contract.StorageContract`). The reference here is written apart from any
backend: plain Python over the live documents' texts, with the analysis and formula documented in
:mod:`siftline.storage.text` (its ``words``/``query_terms`` split the text; the counting and scoring are
redone here). The suite checks, on random corpora with many ties, after random inserts, replacements
(with and without text) and deletes, and with random filters, that ``text_search`` returns the
reference's top k: same ids in the same order (ties by document id), scores equal to 1e-9.

The suite only calls the Protocol methods of ``siftline.storage.base``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from siftline.filters import Node, evaluate, parse_filter
from siftline.ids import new_id
from siftline.models import Collection
from siftline.storage import text
from siftline.storage.base import Storage
from siftline.testing.contract import (
    CONTRACT_CHECKS,
    TEXT_BM25,
    OpenStorage,
    fresh,
    make_write,
    new_collection,
    new_namespace,
)

K1, B = 1.2, 0.75
WORDS = (
    "apple",
    "apples",
    "Orchard",
    "blossom",
    "cherry",
    "fig",
    "figs",
    "the",
    "of",
    "crème",
    "brûlée",
    "x1",
)


def reference_bm25(
    docs: Mapping[str, tuple[str, Mapping[str, Any]]], query: str, top_k: int, filter: Node | None = None
) -> list[tuple[str, float]]:
    """BM25 with Lucene's idf over every live document's text; only documents passing ``filter`` rank."""
    counts = {doc_id: Counter(text.stems(text.words(body))) for doc_id, (body, _) in docs.items()}
    n = len(counts)
    if n == 0:
        return []
    avgdl = sum(sum(c.values()) for c in counts.values()) / n
    scores: dict[str, float] = {}
    for term in text.query_terms(query):
        df = sum(1 for c in counts.values() if term in c)
        if df == 0:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for doc_id, c in counts.items():
            tf = c.get(term, 0)
            if tf == 0 or (filter is not None and not evaluate(filter, docs[doc_id][1])):
                continue
            norm = K1 * (1 - B + B * sum(c.values()) / avgdl)
            scores[doc_id] = scores.get(doc_id, 0.0) + idf * tf * (K1 + 1) / (tf + norm)
    return sorted(scores.items(), key=lambda p: (-p[1], p[0]))[:top_k]


_texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=8).map(" ".join)
_ops = st.lists(
    st.tuples(
        st.sampled_from(["put", "put", "put", "replace_no_text", "delete"]),
        st.integers(0, 11),
        _texts,
        st.sampled_from(["a", "b"]),
    ),
    min_size=1,
    max_size=30,
)
_queries = st.lists(
    st.tuples(
        st.lists(st.sampled_from((*WORDS, "unknown")), min_size=1, max_size=4).map(" ".join),
        st.integers(1, 6),
        st.sampled_from([None, {"group": "a"}, {"group": "b"}]),
    ),
    min_size=1,
    max_size=5,
)


class TextSearchContract:
    @pytest.fixture
    def open_storage(self) -> OpenStorage:
        raise NotImplementedError("provide an open_storage fixture")

    @pytest.fixture
    def storage(self, open_storage: OpenStorage) -> Storage:
        return open_storage()  # one per test: hypothesis examples each make their own collection

    @hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=CONTRACT_CHECKS)
    @given(ops=_ops, queries=_queries)
    def test_text_search_is_exact_bm25_after_random_writes(
        self, storage: Storage, ops: list[tuple[str, int, str, str]], queries: list[Any]
    ) -> None:
        name = new_id("col")
        collection = new_collection(storage, new_namespace(storage, name), name, features=(TEXT_BM25,))
        live: dict[str, tuple[str, dict[str, Any]]] = {}
        for op, number, body, group in ops:
            doc_id = f"d{number:02d}"
            current = fresh(storage, collection)
            if op == "delete":
                storage.delete_documents(current, [doc_id])
                live.pop(doc_id, None)
                continue
            with_text = op == "put"
            write = make_write(current, doc_id, text=body if with_text else None, group=group)
            storage.put_documents(current, [write], replace=True)
            if with_text:
                live[doc_id] = (body, {"group": group, "text": body})
            else:
                live.pop(doc_id, None)
        current = fresh(storage, collection)
        for query, top_k, where in queries:
            node = parse_filter(where) if where is not None else None
            self._check(storage, current, live, query, top_k, node)

    def test_scores_survive_a_restart(self, open_storage: OpenStorage) -> None:
        storage = open_storage()
        collection = new_collection(storage, new_namespace(storage, "bm25"), "bm25", features=(TEXT_BM25,))
        live = {f"d{i}": (" ".join(WORDS[i % 7 : i % 7 + 1 + i % 5]), {"group": "a"}) for i in range(20)}
        storage.put_documents(
            collection,
            [make_write(collection, k, text=v[0], group="a") for k, v in live.items()],
            replace=False,
        )
        storage.delete_documents(fresh(storage, collection), ["d3", "d4"])
        del live["d3"], live["d4"]
        before = storage.text_search(fresh(storage, collection), TEXT_BM25, "apple orchard the fig", 10)
        storage.close()
        reopened = open_storage()
        after = reopened.text_search(fresh(reopened, collection), TEXT_BM25, "apple orchard the fig", 10)
        assert after == before
        self._check(reopened, fresh(reopened, collection), live, "apple orchard the fig", 10, None)

    @staticmethod
    def _check(
        storage: Storage,
        collection: Collection,
        live: Mapping[str, tuple[str, Mapping[str, Any]]],
        query: str,
        top_k: int,
        node: Node | None,
    ) -> None:
        got = storage.text_search(collection, TEXT_BM25, query, top_k, filter=node)
        want = reference_bm25(live, query, top_k, node)
        assert [d for d, _ in got] == [d for d, _ in want], (query, node, got, want)
        for (_, a), (_, b) in zip(got, want, strict=True):
            assert a == pytest.approx(b, rel=0, abs=1e-9)
