"""BM25 on the SQLite backend: the text contract, the analysis, and the move from FTS5 tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from siftline.filters import parse_filter
from siftline.storage import text
from siftline.storage.base import Storage
from siftline.storage.sqlite.backend import SQLiteStorage
from siftline.storage.sqlite.bm25 import Batch, TextIndex
from siftline.testing import OpenStorage, fresh, make_write, new_collection, new_namespace
from siftline.testing.contract import TEXT_BM25
from siftline.testing.text_contract import TextSearchContract, reference_bm25


class TestSQLiteTextSearch(TextSearchContract):
    @pytest.fixture
    def open_storage(self, tmp_path: Path) -> Iterator[OpenStorage]:
        opened: list[SQLiteStorage] = []

        def open_() -> Storage:
            opened.append(SQLiteStorage(tmp_path / "siftline.db", tmp_path / "vectors"))
            return opened[-1]

        yield open_
        for instance in reversed(opened):
            instance.close()


def test_analysis_folds_case_accents_and_punctuation_and_stems() -> None:
    assert text.words("Crème BRÛLÉE, snake_case & C++ 3.14") == [
        "creme",
        "brulee",
        "snake",
        "case",
        "c",
        "3",
        "14",
    ]
    assert text.query_terms("Running runners run; the RUN") == ["run", "runner", "the"]


def test_fts5_tables_of_an_older_data_directory_become_bm25_rows(tmp_path: Path) -> None:
    """A data directory from before the BM25 index (text in ``fts_<seq>``) answers the same searches."""
    storage = SQLiteStorage(tmp_path / "siftline.db", tmp_path / "vectors")
    collection = new_collection(storage, new_namespace(storage, "old"), "old", features=(TEXT_BM25,))
    bodies = {f"d{i}": f"apple {'orchard ' * (i % 3)}story number {i}" for i in range(12)}
    storage.put_documents(
        collection, [make_write(collection, k, text=v) for k, v in bodies.items()], replace=False
    )
    storage.close()
    old = sqlite3.connect(tmp_path / "siftline.db", isolation_level=None)
    seq = old.execute("SELECT seq FROM features WHERE kind = 'bm25'").fetchone()[0]
    old.execute(f"CREATE VIRTUAL TABLE fts_{seq} USING fts5(text, tokenize='porter unicode61')")
    old.executemany(
        f"INSERT INTO fts_{seq}(rowid, text) SELECT rowid, ? FROM documents WHERE document_id = ?",
        [(v, k) for k, v in bodies.items()],
    )
    old.execute(f"DROP TABLE bm25_{seq}")
    old.execute(f"DROP TABLE bm25_terms_{seq}")
    old.close()

    reopened = SQLiteStorage(tmp_path / "siftline.db", tmp_path / "vectors")
    try:
        current = fresh(reopened, collection)
        live = {k: (v, {}) for k, v in bodies.items()}
        got = reopened.text_search(current, TEXT_BM25, "orchard story 7", 5)
        want = reference_bm25(live, "orchard story 7", 5)
        assert [d for d, _ in got] == [d for d, _ in want] == ["d7", "d11", "d2", "d5", "d8"]
        assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-9)
        with reopened.db.read() as conn:
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert f"fts_{seq}" not in names and f"bm25_{seq}" in names
    finally:
        reopened.close()


# -- the in-memory index alone, at sizes where segments, merges and MaxScore pruning all happen ----------


def _index_and_reference(
    seed: int, n_docs: int, batch: int, deletes: int
) -> tuple[TextIndex, dict[str, str]]:
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(300)]
    weights = 1 / np.arange(1, 301)
    weights /= weights.sum()
    bodies = {
        f"d{i:05d}": " ".join(rng.choice(vocab, size=int(rng.integers(1, 30)), p=weights))
        for i in range(n_docs)
    }
    index = TextIndex()
    index.reset({}, 0)
    ids = list(bodies)
    for lo in range(0, n_docs, batch):
        chunk = ids[lo : lo + batch]
        analyzed = text.analyze(bodies[d] for d in chunk)
        for term in analyzed.terms:
            index.vocab.setdefault(term, len(index.vocab))
        term_ids = np.array([index.vocab[t] for t in analyzed.terms], dtype=np.int64)
        rowids = np.arange(lo + 1, lo + len(chunk) + 1)
        index.apply(
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            Batch(rowids, chunk, term_ids[analyzed.codes], analyzed.tfs, analyzed.ptr, analyzed.lengths),
        )
    for victim in rng.choice(n_docs, size=deletes, replace=False):
        analyzed = text.analyze([bodies[ids[victim]]])
        gone = np.array([index.vocab[t] for t in analyzed.terms], dtype=np.int64)[analyzed.codes]
        index.apply(np.array([victim + 1]), gone, None)
        del bodies[ids[victim]]
    return index, bodies


@hypothesis_settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n_docs=st.integers(50, 1500),
    batch=st.sampled_from([1, 7, 64, 500]),
    deletes=st.integers(0, 40),
    top_k=st.integers(1, 25),
    query_len=st.integers(1, 12),
    filtered=st.booleans(),
)
def test_index_search_equals_brute_force(
    seed: int, n_docs: int, batch: int, deletes: int, top_k: int, query_len: int, filtered: bool
) -> None:
    index, bodies = _index_and_reference(seed, min(n_docs, 300) if batch == 1 else n_docs, batch, deletes)
    rng = np.random.default_rng(seed + 1)
    some_doc = bodies[sorted(bodies)[int(rng.integers(0, len(bodies)))]].split()
    query = " ".join([*some_doc[:query_len], *(f"w{int(i)}" for i in rng.integers(0, 320, size=query_len))])
    allowed = None
    live = {d: (b, {}) for d, b in bodies.items()}
    where = None
    if filtered:
        keep = {d for d in bodies if rng.random() < 0.2}
        allowed = np.array(sorted(int(d[1:]) + 1 for d in keep), dtype=np.int64)
        live = {d: (b, {"keep": d in keep}) for d, b in bodies.items()}
        where = parse_filter({"keep": True})
    got = index.search(text.query_terms(query), top_k, allowed)
    want = reference_bm25(live, query, top_k, where)
    assert [d for d, _ in got] == [d for d, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=0, abs=1e-9)
