"""The BM25 engines ``benchmarks/bm25_engines.py`` compares, behind one small interface, and the exact
reference they are judged against. A helper module: it has no command line of its own.

Every engine is fed raw texts in chunks (``add``), made searchable by ``finish``, and asked one query
at a time (``search``: the query text in, the top-k document ids out, both conversions included).
``only_decile`` asks for the documents whose ``decile`` equals it (the 10 % filter); ``write`` adds one
document and returns once it is searchable.

- ``fts5``: SQLite FTS5 ``porter unicode61`` in a WAL file (Siftline's former engine and pragmas),
  ``ORDER BY bm25()`` over the OR of the query's quoted words; the filter is a JOIN on a metadata table.
- ``tantivy`` (an index directory, mmap) and ``tantivy-ram`` (in RAM: a commit writes no file): tantivy's ``en_stem`` tokenizer (Snowball English), the OR of the words through its query
  parser, ``decile`` an indexed fast field (filter: a ``Must`` clause scoring 0), ``rowid`` a fast field.
- ``siftline``: Siftline's own :class:`TextIndex` over :func:`siftline.storage.text.analyze`, loaded the
  way ``bm25_rows.load`` does (batches, then ``compact``); the filter is ``allowed_rowids``.
- ``bm25s`` (optional, not a Siftline dependency): PyStemmer Porter, no stop words, ``method="lucene"``;
  the filter is its ``weight_mask``; it has no incremental add.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from quality import fts_match
from siftline.storage import text
from siftline.storage.sqlite.bm25 import Batch, TextIndex

_NONE = np.zeros(0, dtype=np.int64)
ENGINES = ("fts5", "tantivy", "tantivy-ram", "siftline", "bm25s")


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class Engine:
    name = ""
    note = ""
    filters = True
    writes = True

    def __init__(self) -> None:
        self.ids: list[str] = []  # by position (rowid - 1)
        self.deciles: list[np.ndarray] = []

    def add(self, ids: Sequence[str], texts: Sequence[str], deciles: np.ndarray) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Make everything added searchable (commit, merge, compact)."""

    def search(self, query: str, k: int, only_decile: int | None = None) -> list[str]:
        raise NotImplementedError

    def write(self, doc_id: str, body: str, decile: int) -> None:
        raise NotImplementedError

    def disk_bytes(self) -> int | None:
        return None

    def stats(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        """Release what the engine holds."""


class Fts5(Engine):
    name = "fts5"

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.path = folder / "fts5.sqlite"
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        for pragma in (
            "journal_mode = WAL",
            "synchronous = NORMAL",
            "temp_store = MEMORY",
            "cache_size = -65536",
        ):
            self.conn.execute(f"PRAGMA {pragma}")
        self.conn.execute("CREATE VIRTUAL TABLE fts USING fts5(text, tokenize='porter unicode61')")
        self.conn.execute("CREATE TABLE meta (rowid INTEGER PRIMARY KEY, decile INTEGER NOT NULL)")
        self.conn.execute("BEGIN")
        self.note = (
            "a WAL file, synchronous NORMAL, 64 MB page cache (Siftline's pragmas); FTS5 automerge as default"
        )

    def add(self, ids: Sequence[str], texts: Sequence[str], deciles: np.ndarray) -> None:
        start = len(self.ids) + 1
        self.ids.extend(ids)
        rowids = range(start, start + len(ids))
        self.conn.executemany("INSERT INTO fts(rowid, text) VALUES (?, ?)", zip(rowids, texts, strict=True))
        self.conn.executemany(
            "INSERT INTO meta(rowid, decile) VALUES (?, ?)", zip(rowids, deciles.tolist(), strict=True)
        )

    def finish(self) -> None:
        self.conn.execute("COMMIT")

    def search(self, query: str, k: int, only_decile: int | None = None) -> list[str]:
        match = fts_match(query)
        if not match:
            return []
        if only_decile is None:
            sql = "SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY bm25(fts), rowid LIMIT ?"
            rows = self.conn.execute(sql, (match, k)).fetchall()
        else:
            sql = (
                "SELECT fts.rowid FROM fts JOIN meta ON meta.rowid = fts.rowid WHERE fts MATCH ? "
                "AND meta.decile = ? ORDER BY bm25(fts), fts.rowid LIMIT ?"
            )
            rows = self.conn.execute(sql, (match, only_decile, k)).fetchall()
        ids = self.ids
        return [ids[r[0] - 1] for r in rows]

    def write(self, doc_id: str, body: str, decile: int) -> None:
        self.ids.append(doc_id)
        rowid = len(self.ids)
        self.conn.execute("BEGIN")
        self.conn.execute("INSERT INTO fts(rowid, text) VALUES (?, ?)", (rowid, body))
        self.conn.execute("INSERT INTO meta(rowid, decile) VALUES (?, ?)", (rowid, decile))
        self.conn.execute("COMMIT")

    def disk_bytes(self) -> int | None:
        return dir_bytes(self.path.parent)

    def close(self) -> None:
        self.conn.close()


class Tantivy(Engine):
    name = "tantivy"

    def __init__(self, folder: Path | None, heap_bytes: int = 256 << 20) -> None:
        import tantivy

        super().__init__()
        self.tv = tantivy
        self.folder = folder
        builder = tantivy.SchemaBuilder()
        builder.add_text_field("body", tokenizer_name="en_stem", index_option="freq")
        builder.add_text_field("doc_id", stored=True, tokenizer_name="raw")
        builder.add_integer_field("rowid", fast=True)
        builder.add_integer_field("decile", indexed=True, fast=True)
        self.schema = builder.build()
        self.index = tantivy.Index(self.schema, path=str(folder) if folder else None)
        self.heap_bytes = heap_bytes
        self.writer = self.index.writer(heap_size=heap_bytes, num_threads=1)
        self.searcher: Any = None
        self.note = (
            f"index {'on disk (mmap)' if folder else 'in RAM'}, writer 1 thread, {heap_bytes >> 20} MB heap"
        )

    def add(self, ids: Sequence[str], texts: Sequence[str], deciles: np.ndarray) -> None:
        document, add = self.tv.Document, self.writer.add_document
        start = len(self.ids)
        self.ids.extend(ids)
        for i, (doc_id, body, decile) in enumerate(zip(ids, texts, deciles.tolist(), strict=True)):
            add(document(body=body, doc_id=doc_id, rowid=start + i, decile=decile))

    def finish(self) -> None:
        self.writer.commit()
        self.writer.wait_merging_threads()  # the build includes its merges; a new writer takes the writes
        self.writer = self.index.writer(heap_size=self.heap_bytes, num_threads=1)
        self.index.reload()
        self.searcher = self.index.searcher()

    def search(self, query: str, k: int, only_decile: int | None = None) -> list[str]:
        words = " ".join(dict.fromkeys(text.words(query)))  # letters and digits only: no query syntax
        if not words:
            return []
        q = self.index.parse_query(words, ["body"])
        if only_decile is not None:
            tv = self.tv
            must = tv.Query.const_score_query(tv.Query.term_query(self.schema, "decile", only_decile), 0.0)
            q = tv.Query.boolean_query([(tv.Occur.Must, q), (tv.Occur.Must, must)])
        hits = self.searcher.search(q, k, count=False).hits
        ids = self.ids
        return [ids[r] for r in self.searcher.fast_field_values("rowid", [a for _, a in hits])]

    def write(self, doc_id: str, body: str, decile: int) -> None:
        rowid = len(self.ids)
        self.ids.append(doc_id)
        self.writer.add_document(self.tv.Document(body=body, doc_id=doc_id, rowid=rowid, decile=decile))
        self.writer.commit()
        self.index.reload()
        self.searcher = self.index.searcher()

    def disk_bytes(self) -> int | None:
        return dir_bytes(self.folder) if self.folder else None

    def stats(self) -> dict[str, Any]:
        return {"segments": self.searcher.num_segments} if self.searcher is not None else {}

    def close(self) -> None:
        self.writer.rollback()
        self.searcher = self.writer = self.index = None


class Siftline(Engine):
    name = "siftline"

    def __init__(self) -> None:
        super().__init__()
        self.index = TextIndex()
        self.index.reset({}, 0)
        self.decile_of: list[np.ndarray] = []
        self.allowed: dict[int, np.ndarray] = {}
        self.note = "TextIndex: analysis in Python (PyStemmer), exact MaxScore; filter = allowed rowids"

    def _batch(self, ids: Sequence[str], texts: Sequence[str]) -> Batch:
        a = text.analyze(texts)
        vocab = self.index.vocab
        fresh = {t: len(vocab) + i for i, t in enumerate(t for t in a.terms if t not in vocab)}
        vocab.update(fresh)  # as the store does: new term ids first, then apply
        term_ids = np.fromiter((vocab[t] for t in a.terms), dtype=np.int64, count=len(a.terms))
        start = len(self.ids) + 1
        self.ids.extend(ids)
        rowids = np.arange(start, start + len(ids), dtype=np.int64)
        return Batch(rowids, list(ids), term_ids[a.codes], a.tfs, a.ptr, a.lengths)

    def add(self, ids: Sequence[str], texts: Sequence[str], deciles: np.ndarray) -> None:
        self.decile_of.append(np.asarray(deciles))
        self.index.apply(_NONE, _NONE, self._batch(ids, texts))

    def finish(self) -> None:
        self.index.compact()

    def search(self, query: str, k: int, only_decile: int | None = None) -> list[str]:
        allowed = None
        if only_decile is not None:
            allowed = self.allowed.get(only_decile)
            if allowed is None:  # the payload index's answer, made once (not part of the engine's cost)
                deciles = np.concatenate(self.decile_of)
                allowed = self.allowed[only_decile] = np.flatnonzero(deciles == only_decile) + 1
        return [doc for doc, _ in self.index.search(text.query_terms(query), k, allowed)]

    def write(self, doc_id: str, body: str, decile: int) -> None:
        self.decile_of.append(np.array([decile]))
        self.index.apply(_NONE, _NONE, self._batch([doc_id], [body]))

    def stats(self) -> dict[str, Any]:
        return self.index.stats()

    def close(self) -> None:
        self.index.reset({}, 0)


class Bm25s(Engine):
    name = "bm25s"
    writes = False

    def __init__(self) -> None:
        import bm25s
        import Stemmer

        super().__init__()
        self.bm25s = bm25s
        self.stemmer = Stemmer.Stemmer("porter")
        self.texts: list[str] = []
        self.decile_of: list[np.ndarray] = []
        self.masks: dict[int, np.ndarray] = {}
        self.retriever: Any = None
        self.note = f"bm25s {bm25s.__version__}: Porter, no stop words, lucene; no incremental add"

    def _tokens(self, texts: list[str], ids: bool) -> Any:
        return self.bm25s.tokenize(
            texts, stopwords=None, stemmer=self.stemmer, return_ids=ids, show_progress=False
        )

    def add(self, ids: Sequence[str], texts: Sequence[str], deciles: np.ndarray) -> None:
        self.ids.extend(ids)
        self.texts.extend(texts)
        self.decile_of.append(np.asarray(deciles))

    def finish(self) -> None:
        self.retriever = self.bm25s.BM25(k1=text.K1, b=text.B, method="lucene")
        self.retriever.index(self._tokens(self.texts, True), show_progress=False)
        self.texts = []

    def search(self, query: str, k: int, only_decile: int | None = None) -> list[str]:
        mask = None
        if only_decile is not None:
            mask = self.masks.get(only_decile)
            if mask is None:
                mask = self.masks[only_decile] = (np.concatenate(self.decile_of) == only_decile).astype(
                    np.float32
                )
        docs, scores = self.retriever.retrieve(
            self._tokens([query], False), k=min(k, len(self.ids)), show_progress=False, weight_mask=mask
        )
        ids = self.ids
        return [ids[d] for d, s in zip(docs[0].tolist(), scores[0].tolist(), strict=True) if s > 0]


def make(name: str, folder: Path) -> Engine:
    """A fresh engine (files under ``folder``); ImportError when an optional one's package is missing."""
    if name == "fts5":
        return Fts5(folder)
    if name == "tantivy":
        os.makedirs(folder / "tantivy", exist_ok=True)
        return Tantivy(folder / "tantivy")
    if name == "tantivy-ram":
        engine = Tantivy(None)
        engine.name = name
        return engine
    if name == "siftline":
        return Siftline()
    if name == "bm25s":
        return Bm25s()
    raise ValueError(f"unknown engine {name!r}")


class ExactBM25:
    """The reference: Siftline's analysis and formula (:mod:`siftline.storage.text`), every posting of
    every query term scored with numpy (no skipping), ties by document id. Independent of
    :class:`TextIndex`: its own vocabulary and term-major postings, made from :func:`text.analyze`."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.ids: list[str] = []
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        a = text.analyze(texts)
        setdefault = self.vocab.setdefault
        tid = np.array([setdefault(t, len(self.vocab)) for t in a.terms], dtype=np.int64)
        docs = np.repeat(np.arange(len(self.ids), len(self.ids) + len(ids), dtype=np.int32), np.diff(a.ptr))
        self._parts.append((tid[a.codes].astype(np.int32), docs, a.tfs, a.lengths))
        self.ids.extend(ids)

    def freeze(self) -> None:
        terms, docs, tfs, lengths = (np.concatenate([p[i] for p in self._parts]) for i in range(4))
        self._parts = []
        order = np.argsort(terms, kind="stable")
        self.docs, self.tfs = docs[order], tfs[order]
        self.indptr = np.zeros(len(self.vocab) + 1, dtype=np.int64)
        np.cumsum(np.bincount(terms, minlength=len(self.vocab)), out=self.indptr[1:])
        self.lengths = lengths.astype(np.float64)
        self.avgdl = float(self.lengths.mean())
        self.rank = np.argsort(np.argsort(np.array(self.ids), kind="stable"), kind="stable")

    def top(self, query: str, k: int, allowed: np.ndarray | None = None) -> list[str]:
        """The exact top ``k`` (``allowed``: a bool mask of the documents that may be returned)."""
        n = len(self.ids)
        scores = np.zeros(n, dtype=np.float64)
        for term in text.query_terms(query):
            t = self.vocab.get(term)
            if t is None:
                continue
            lo, hi = self.indptr[t], self.indptr[t + 1]
            docs = self.docs[lo:hi]
            idf_t = float(text.idf(n, np.array([hi - lo]))[0])
            scores[docs] += text.term_scores(idf_t, self.tfs[lo:hi], self.lengths[docs], self.avgdl)
        if allowed is not None:
            scores[~allowed] = 0.0
        cand = np.flatnonzero(scores > 0)
        best = cand[np.lexsort((self.rank[cand], -scores[cand]))[:k]]
        return [self.ids[i] for i in best.tolist()]
