"""Which HNSW library: faiss-cpu or hnswlib, measured side by side on the scale benchmark's vectors.

For N synthetic 384-d vectors (``benchmarks/synthetic.py``) and 200 queries: build rate (2 threads),
then per library and efSearch: p50 latency of one query (1 thread) and recall@10 against exact search;
and a 10 %-selective filtered search — faiss with a bitmap checked inside the graph walk
(``IDSelectorBitmap``), hnswlib with its filter callback (a Python function per candidate).
hnswlib is not a dependency of Siftline: ``pip install hnswlib`` to include it (it is skipped if absent).

    python benchmarks/ann_choice.py [--docs 100000] [--no-write]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np
from rich.progress import Progress

from report import percentiles, write_section
from synthetic import Synthetic

M, EF_CONSTRUCTION, K = 32, 64, 10
EFS = (32, 64, 96, 128, 160, 192, 256)


def recall(found: list[np.ndarray], truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f.tolist()) & set(t.tolist())) / K for f, t in zip(found, truth, strict=True)])
    )


def timed(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray) -> tuple[float, list[np.ndarray]]:
    samples, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        found.append(search(q))
        samples.append((time.perf_counter() - t0) * 1000)
    return percentiles(samples)["p50"], found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    world = Synthetic(7)
    with Progress() as progress:
        task = progress.add_task("generate vectors", total=args.docs)
        parts = []
        for i in range(world.chunks(args.docs)):
            chunk = world.chunk(i, args.docs, text=False)
            parts.append(chunk.vectors)
            progress.advance(task, len(chunk))
    data = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
    targets = world.query_targets(args.queries, args.docs)
    queries = np.ascontiguousarray(world.query_vectors(targets, args.docs), dtype=np.float32)
    truth = np.argsort(-(queries @ data.T), axis=1)[:, :K]
    passing = np.random.default_rng(3).random(args.docs) < 0.10
    allowed = np.flatnonzero(passing)
    sub = data[allowed]
    filtered_truth = allowed[np.argsort(-(queries @ sub.T), axis=1)[:, :K]]
    rows: list[str] = []

    faiss.omp_set_num_threads(2)
    index = faiss.IndexHNSWFlat(data.shape[1], M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = EF_CONSTRUCTION
    t0 = time.perf_counter()
    index.add(data)
    build = args.docs / (time.perf_counter() - t0)
    faiss.omp_set_num_threads(1)
    fa: Any = faiss
    bits = np.packbits(passing, bitorder="little")
    for ef in EFS:
        params = fa.SearchParametersHNSW(efSearch=ef)
        p50, found = timed(lambda q, p=params: index.search(q[None], K, params=p)[1][0], queries)
        rows.append(
            f"| faiss-cpu {faiss.__version__} | {build:,.0f} | {ef} | {p50:.3f} | {recall(found, truth):.3f} |"
        )
    params = fa.SearchParametersHNSW(efSearch=96, sel=fa.IDSelectorBitmap(args.docs, fa.swig_ptr(bits)))
    p50, found = timed(lambda q: index.search(q[None], K, params=params)[1][0], queries)
    rows.append(
        f"| faiss-cpu, 10 % filter (bitmap) | | 96 | {p50:.3f} | {recall(found, filtered_truth):.3f} |"
    )

    try:
        import hnswlib
    except ImportError:
        rows.append("| hnswlib | not installed (`pip install hnswlib`) | | | |")
    else:
        graph = hnswlib.Index("ip", data.shape[1])
        graph.init_index(args.docs, M=M, ef_construction=EF_CONSTRUCTION)
        graph.set_num_threads(2)
        t0 = time.perf_counter()
        graph.add_items(data, np.arange(args.docs))
        build = args.docs / (time.perf_counter() - t0)
        graph.set_num_threads(1)
        for ef in EFS:
            graph.set_ef(ef)
            p50, found = timed(lambda q: graph.knn_query(q[None], K)[0][0], queries)
            rows.append(f"| hnswlib {hnswlib.__version__ if hasattr(hnswlib, '__version__') else ''} | "
                        f"{build:,.0f} | {ef} | {p50:.3f} | {recall(found, truth):.3f} |")  # fmt: skip
        graph.set_ef(96)
        p50, found = timed(
            lambda q: graph.knn_query(q[None], K, filter=lambda i: bool(passing[i]))[0][0], queries
        )
        rows.append(
            f"| hnswlib, 10 % filter (Python callback) | | 96 | {p50:.3f} | {recall(found, filtered_truth):.3f} |"
        )

    table = (
        f"{args.docs:,} synthetic 384-d vectors, {args.queries} queries, M={M}, efConstruction={EF_CONSTRUCTION}; "
        "build on 2 threads, search one query at a time on 1 thread.\n\n"
        "| library | build vectors/s | efSearch | p50 ms | recall@10 |\n|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )
    print(table)
    if not args.no_write:
        write_section(
            "ann-choice", "ANN library choice", f"python benchmarks/ann_choice.py --docs {args.docs}", table
        )


if __name__ == "__main__":
    main()
