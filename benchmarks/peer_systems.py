"""The systems the peers benchmark drives, one class each, all with one shape (``System``).

``load()`` and ``index()`` return their figures; ``grid(kind)`` is the search knob's settings from
cheapest to dearest (empty when the system has no knob to tune for that kind), ``use(kind, setting)``
applies one, ``ready(kind)`` prepares off the clock, and ``search(kind, i)`` answers query ``i`` of ``Context.queries`` with document indexes,
best first. Kinds: ``dense`` (top 10), ``filtered`` (top 10 among ``decile == 3``), ``bm25`` (top 10),
``hybrid`` (dense top 50 + BM25 top 50, RRF k=60, final 10).

Here: ``FaissHNSW`` (the floor: faiss ``IndexHNSWFlat``, inner product, Siftline's M/efConstruction,
searched on one thread) and ``LanceDB`` (0.40, in this process). PostgreSQL + pgvector is in
``peer_postgres.py``, Siftline over HTTP in ``peer_siftline.py``.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import faiss
import numpy as np

from peer_truth import Corpus, Queries
from scale import progress
from synthetic import DIM, Chunk

os.environ.setdefault("LANCEDB_LOG", "error")  # lance warns on every query that omits _distance/_score

TOP_K, LEG_TOP_K, RRF_K = 10, 50, 60
FILTER_SQL = "decile = 3"
EF_GRID = (10, 16, 24, 32, 40, 48, 64, 80, 100, 128, 160, 200, 256, 320, 400, 512, 640, 800, 1000)


@dataclass
class Context:
    corpus: Corpus
    queries: Queries
    tmp: Path
    m: int  # Siftline's HNSW M and efConstruction (config defaults or the server's report)
    ef_construction: int
    args: argparse.Namespace


class System:
    name: ClassVar[str]
    title: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]] = ("dense", "filtered")

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.setting: dict[str, Any] = {}

    def load(self) -> dict[str, Any]:
        return {}

    def index(self) -> dict[str, Any]:
        return {}

    def grid(self, kind: str) -> list[Any]:
        return []

    def use(self, kind: str, setting: Any) -> None:
        self.setting[kind] = setting

    def ready(self, kind: str) -> None:
        """Called before ``kind``'s queries run (work that must stay off the clock)."""

    def search(self, kind: str, i: int) -> list[int]:
        raise NotImplementedError

    def extra(self, kind: str, measured: range) -> dict[str, Any]:
        """More figures for ``kind`` after its measured queries (search paths, plans)."""
        return {}

    def close(self) -> None:
        return None


def timed(fn: Any, *args: Any) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


# -- faiss -------------------------------------------------------------------------------------


class FaissHNSW(System):
    name, title = "faiss", "faiss HNSW in process (floor)"

    def index(self) -> dict[str, Any]:
        corpus, threads = self.ctx.corpus, os.cpu_count() or 1
        self.hnsw = faiss.IndexHNSWFlat(DIM, self.ctx.m, faiss.METRIC_INNER_PRODUCT)
        self.hnsw.hnsw.efConstruction = self.ctx.ef_construction
        faiss.omp_set_num_threads(threads)
        seconds = 0.0
        with progress(f"faiss HNSW build ({threads} threads)", len(corpus)) as advance:
            for lo in range(0, len(corpus), 10_000):
                block = corpus.vectors[lo : lo + 10_000]
                seconds += timed(self.hnsw.add, block)
                advance(len(block))
        faiss.omp_set_num_threads(1)  # searches: one thread, one query at a time
        self.bits = np.packbits(corpus.mask("10%"), bitorder="little")
        self.selector = faiss.IDSelectorBitmap(len(corpus), faiss.swig_ptr(self.bits))
        return {"seconds": round(seconds, 2), "threads": threads, "m": self.ctx.m,
                "ef_construction": self.ctx.ef_construction}  # fmt: skip

    def grid(self, kind: str) -> list[Any]:
        return [{"ef_search": ef} for ef in EF_GRID]

    def search(self, kind: str, i: int) -> list[int]:
        params = faiss.SearchParametersHNSW(efSearch=self.setting[kind]["ef_search"])
        if kind == "filtered":
            params.sel = self.selector
        _, labels = self.hnsw.search(self.ctx.queries.vectors[i : i + 1], TOP_K, params=params)
        return [int(j) for j in labels[0] if j >= 0]


# -- LanceDB -----------------------------------------------------------------------------------


def arrow_batch(chunk: Chunk) -> Any:
    """One chunk as a pyarrow record batch: id, text, vector (fixed_size_list<float32, 384>), category,
    bucket, decile, tenant, year."""
    import pyarrow as pa

    m = chunk.meta
    columns = {
        "id": pa.array(np.arange(chunk.start, chunk.start + len(chunk), dtype=np.int64)),
        "text": pa.array(chunk.texts, pa.string()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(chunk.vectors.ravel(), pa.float32()), DIM),
        "category": pa.array([f"cat-{v}" for v in m["category"].tolist()]),
        "bucket": pa.array(m["bucket"].astype(np.int32)),
        "decile": pa.array(m["decile"].astype(np.int32)),
        "tenant": pa.array([f"tenant-{v:04d}" for v in m["tenant"].tolist()]),
        "year": pa.array(m["year"].astype(np.int32)),
    }
    return pa.record_batch(list(columns.values()), names=list(columns))


class LanceDB(System):
    """IVF_HNSW_SQ (HNSW graphs over 8-bit scalar-quantised vectors, Siftline's M/efConstruction, one
    IVF partition per ~250k rows) with an exact refine when the sweep needs it; BITMAP indexes on
    decile/bucket/category; the native FTS index (no stemming or stop words, as the reference)."""

    name, title = "lancedb", "LanceDB 0.40 in process"
    kinds = ("dense", "filtered", "bm25", "hybrid")

    def load(self) -> dict[str, Any]:
        import lancedb
        import pyarrow as pa

        corpus = self.ctx.corpus
        batches = [arrow_batch(c) for c in corpus.chunks]  # made before the clock starts
        schema = batches[0].schema
        self.db = lancedb.connect(self.ctx.tmp / "lancedb")
        with progress(f"LanceDB: create a table of {len(corpus):,} rows", len(corpus)) as advance:

            def feed() -> Any:
                for batch in batches:
                    yield batch
                    advance(batch.num_rows)

            t0 = time.perf_counter()
            self.table = self.db.create_table(
                "docs", data=pa.RecordBatchReader.from_batches(schema, feed()), schema=schema
            )
            seconds = time.perf_counter() - t0
        return {"seconds": round(seconds, 2), "docs_per_s": round(len(corpus) / seconds, 1),
                "how": "create_table from pyarrow record batches"}  # fmt: skip

    def index(self) -> dict[str, Any]:
        from lancedb.index import FTS, Bitmap, HnswSq

        n = len(self.ctx.corpus)
        self.partitions = max(1, round(n / 250_000))
        config = HnswSq(distance_type="dot", num_partitions=self.partitions, m=self.ctx.m,
                        ef_construction=self.ctx.ef_construction)  # fmt: skip
        parts: dict[str, float] = {}
        print("LanceDB: building the vector, scalar and FTS indexes", flush=True)
        parts["vector IVF_HNSW_SQ"] = timed(lambda: self.table.create_index("vector", config=config))
        for column in ("decile", "bucket", "category"):
            parts[f"BITMAP {column}"] = timed(lambda c=column: self.table.create_index(c, config=Bitmap()))
        fts = FTS(stem=False, remove_stop_words=False, ascii_folding=False)
        parts["FTS text"] = timed(lambda: self.table.create_index("text", config=fts))
        return {"seconds": round(sum(parts.values()), 2), "parts": {k: round(v, 2) for k, v in parts.items()},
                "partitions": self.partitions, "m": self.ctx.m,
                "ef_construction": self.ctx.ef_construction}  # fmt: skip

    def grid(self, kind: str) -> list[Any]:
        if kind not in ("dense", "filtered"):
            return []
        plain = [{"nprobes": self.partitions, "ef": ef, "refine_factor": None} for ef in EF_GRID[:16]]
        refined = [{"nprobes": self.partitions, "ef": ef, "refine_factor": 2} for ef in EF_GRID[4:16]]
        return plain + refined

    def _vector(self, query: Any, setting: dict[str, Any], k: int = TOP_K) -> Any:
        """``ef`` below ``k`` is an error in lance; a hybrid query's dense leg asks for 50."""
        query = query.distance_type("dot").nprobes(setting["nprobes"]).ef(max(setting["ef"], k))
        return query.refine_factor(setting["refine_factor"]) if setting["refine_factor"] else query

    def search(self, kind: str, i: int) -> list[int]:
        q = self.ctx.queries
        if kind == "bm25":
            found = self.table.search(q.texts[i], query_type="fts").limit(TOP_K).select(["id", "_score"])
        elif kind == "hybrid":
            from lancedb.rerankers import RRFReranker

            found = (
                self._vector(
                    self.table.search(query_type="hybrid").vector(q.vectors[i]).text(q.texts[i]),
                    self.setting["dense"],
                    LEG_TOP_K,
                )
                .rerank(RRFReranker(K=RRF_K))
                .limit(LEG_TOP_K)
                .select(["id"])
            )
        else:
            found = self._vector(
                self.table.search(q.vectors[i], vector_column_name="vector"), self.setting[kind]
            )
            found = found.limit(TOP_K).select(["id", "_distance"])
            if kind == "filtered":
                found = found.where(FILTER_SQL, prefilter=True)
        return found.to_arrow()["id"].to_pylist()[:TOP_K]

    def close(self) -> None:
        self.table = self.db = None  # type: ignore[assignment]
