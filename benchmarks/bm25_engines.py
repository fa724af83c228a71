"""Which BM25 engine: SQLite FTS5, tantivy, Siftline's own TextIndex (and bm25s if installed), measured
side by side in one process, one query at a time on one thread (no HTTP).

1. SciFact (``--scifact``, BEIR format: 5,183 abstracts, 809 train claims with qrels), document text
   = title + " " + text: nDCG@10 of each engine's top 10 (the OR of the claim's words), p50/p95
   latency per claim, and agreement with the exact reference.
2. The synthetic corpus of ``benchmarks/synthetic.py`` at ``--docs``: build rate (raw texts in, each
   engine's own analysis, until searchable), VmRSS growth of this process while building (peak sampled
   every 0.25 s, and after) and the index's size on disk; p50/p95 of ``--queries`` short queries (2-4
   mid-frequency words of a document, as ``scale.py`` makes its BM25 queries), as many long queries
   (15-20 words of a document) and the short queries with a 10 % filter (``decile == 3``), after 20
   warm-up queries of each kind; agreement of each top 10 with the reference; and the cost of one
   write made searchable at once (Siftline acknowledges a write once it is searchable): the median of
   ``--writes`` single-document writes into the built index, each checked to be found right after.

The reference is exact BM25 with Siftline's analysis and formula (``bm25_adapters.ExactBM25``: numpy,
every posting scored, ties by document id). overlap@10 = |top 10 ∩ reference top 10| / |reference top 10|;
identical = the same ids in the same order. Engines with another analysis (FTS5's and bm25s's
tokenizers, tantivy's Snowball stemmer and quantised lengths) are not expected to agree exactly.

Results are printed and, unless ``--no-write``, written to docs/BENCHMARKS.md as ``bm25-engines-<size>``;
``--json PATH`` writes every figure.

    python benchmarks/bm25_engines.py                      # 100k synthetic + SciFact, a few minutes
    python benchmarks/bm25_engines.py --docs 1000000       # by hand
    python benchmarks/bm25_engines.py --docs 3000 --queries 20 --writes 20 --scifact-queries 50 --no-write
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import multiprocessing
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from beir import load_corpus, load_qrels, load_queries, ndcg_at_k
from bm25_adapters import ENGINES, Engine, ExactBM25, make
from bm25_report import render
from report import percentiles, write_section
from scale import RssSampler, proc_status_kb, progress, size_label
from synthetic import CHUNK, Synthetic

ROOT = Path(__file__).resolve().parents[1]
K = 10
WARMUP = 20
DECILE = 3  # decile == 3 passes 10 %
LONG_WORDS = (15, 20)


def rss_mb() -> float:
    return (proc_status_kb(os.getpid(), "VmRSS") or 0) / 1024


def trim() -> None:
    """Collect garbage and hand the freed heap back to the system (glibc keeps it otherwise)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def run_queries(
    engine: Engine, queries: list[str], only_decile: int | None, advance: Callable[[int], None]
) -> tuple[list[list[str]], dict[str, float]]:
    found, samples = [], []
    for q in queries:
        t0 = time.perf_counter()
        found.append(engine.search(q, K, only_decile))
        samples.append((time.perf_counter() - t0) * 1000)
        advance(1)
    return found, {k: round(v, 4) for k, v in percentiles(samples).items()}


def agreement(found: list[list[str]], reference: list[list[str]]) -> dict[str, float]:
    overlap = [
        len(set(f) & set(r)) / len(r) if r else float(not f) for f, r in zip(found, reference, strict=True)
    ]
    same = [f == r for f, r in zip(found, reference, strict=True)]
    return {"overlap": round(float(np.mean(overlap)), 4), "identical": round(float(np.mean(same)), 4)}


def build(engine: Engine, parts: list[tuple[list[str], list[str], np.ndarray]], label: str) -> dict[str, Any]:
    trim()
    before = rss_mb()
    total = sum(len(p[0]) for p in parts)
    with RssSampler(os.getpid()) as sampler, progress(f"{label}: building {engine.name}", total) as advance:
        t0 = time.perf_counter()
        for ids, texts, deciles in parts:
            engine.add(ids, texts, deciles)
            advance(len(ids))
        engine.finish()
        seconds = time.perf_counter() - t0
    after = rss_mb()
    trim()
    held = rss_mb()
    disk = engine.disk_bytes()
    return {
        "seconds": round(seconds, 3),
        "docs_per_s": round(total / seconds, 1),
        "rss_before_mb": round(before, 1),
        "rss_growth_mb": round(after - before, 1),
        "rss_peak_growth_mb": round(max(sampler.peak_mb() or 0, after) - before, 1),
        "rss_held_mb": round(held - before, 1),  # after the build's garbage is collected and trimmed
        "disk_mb": round(disk / 2**20, 1) if disk is not None else None,
    }


# -- one engine per process ---------------------------------------------------------------------

_WORK: dict[str, Any] = {}  # what the engines' processes read: made before they fork, never pickled


def isolated(task: Callable[[str], dict[str, Any]], name: str, failures: list[str]) -> dict[str, Any] | None:
    """``task(name)`` in a forked child: each engine starts from the same memory (its RSS growth is its
    own, not a predecessor's freed heap) and leaves nothing behind; the corpus is shared copy-on-write."""
    trim()  # a child reusing the parent's freed heap would grow without its RSS showing it
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        try:
            return pool.submit(task, name).result()
        except Exception as exc:  # reported, and the other engines still run
            failures.append(f"{task.__name__}({name}): {exc!r}")
            print(failures[-1], file=sys.stderr)
            return None


# -- SciFact -------------------------------------------------------------------------------------


def scifact_engine(name: str) -> dict[str, Any]:
    w = _WORK
    engine = make(name, Path(tempfile.mkdtemp(dir=w["tmp"], prefix=f"scifact-{name}-")))
    try:
        built = build(
            engine, [(w["sf_ids"], w["sf_texts"], np.zeros(len(w["sf_ids"]), dtype=np.int64))], "SciFact"
        )
        claims = [q for _, q in w["sf_queries"]]
        for q in claims[:WARMUP]:
            engine.search(q, K)
        with progress(f"SciFact: {name} claims", len(claims)) as advance:
            found, lat = run_queries(engine, claims, None, advance)
    finally:
        engine.close()
    ndcg = [ndcg_at_k(f, w["sf_qrels"][qid]) for f, (qid, _) in zip(found, w["sf_queries"], strict=True)]
    print(f"SciFact {name}: nDCG@10 {np.mean(ndcg):.4f}, p50 {lat['p50']:.3f} ms", file=sys.stderr)
    return {
        "ndcg_at_10": round(float(np.mean(ndcg)), 4),
        "latency_ms": lat,
        "agreement": agreement(found, w["sf_reference"]),
        "build_s": built["seconds"],
    }


def scifact(args: argparse.Namespace, names: list[str], failures: list[str]) -> dict[str, Any]:
    docs = load_corpus(args.scifact)
    qrels = load_qrels(args.scifact, "train")
    queries = [(qid, q) for qid, q in load_queries(args.scifact, "train") if qid in qrels]
    if args.scifact_queries:
        queries = queries[: args.scifact_queries]
    ids, texts = [d.doc_id for d in docs], [d.joined for d in docs]
    ref = ExactBM25()
    ref.add(ids, texts)
    ref.freeze()
    reference = [ref.top(q, K) for _, q in queries]
    _WORK.update(sf_ids=ids, sf_texts=texts, sf_queries=queries, sf_qrels=qrels, sf_reference=reference)
    out: dict[str, Any] = {"docs": len(docs), "queries": len(queries), "engines": {}}
    for name in names:
        row = isolated(scifact_engine, name, failures)
        if row is not None:
            out["engines"][name] = row
    judged = zip(reference, queries, strict=True)
    out["reference_ndcg_at_10"] = round(
        float(np.mean([ndcg_at_k(r, qrels[qid]) for r, (qid, _) in judged])), 4
    )
    return out


# -- synthetic -----------------------------------------------------------------------------------


def corpus(
    world: Synthetic, n: int, targets: np.ndarray
) -> tuple[list[Any], dict[int, np.ndarray], ExactBM25]:
    """The corpus in chunks (ids, texts, deciles), the word ranks of the query targets, the reference."""
    parts, ranks, ref = [], {}, ExactBM25()
    wanted = set(targets.tolist())
    with progress(f"generating {n:,} documents (and the exact reference)", n) as advance:
        for c in range(world.chunks(n)):
            chunk = world.chunk(c, n)
            assert chunk.texts is not None and chunk.word_ranks is not None
            parts.append((chunk.ids, chunk.texts, chunk.meta["decile"].astype(np.int64)))
            for i in range(chunk.start, chunk.start + len(chunk)):
                if i in wanted:
                    ranks[i] = chunk.word_ranks[i - chunk.start]
            ref.add(chunk.ids, chunk.texts)
            advance(len(chunk))
    ref.freeze()
    return parts, ranks, ref


def long_query(world: Synthetic, ranks: np.ndarray, rng: np.random.Generator) -> str:
    k = min(len(ranks), int(rng.integers(LONG_WORDS[0], LONG_WORDS[1] + 1)))
    picked = np.sort(rng.choice(len(ranks), size=k, replace=False))
    return " ".join(world.words[r] for r in ranks[picked].tolist())


def writes(engine: Engine, texts: list[str], n: int, advance: Callable[[int], None]) -> dict[str, Any]:
    samples, visible = [], 0
    for i, body in enumerate(texts):
        marker = f"written{i:05d}"
        doc_id = f"new-{n + i:07d}"
        t0 = time.perf_counter()
        engine.write(doc_id, f"{body} {marker}", 0)
        samples.append((time.perf_counter() - t0) * 1000)
        visible += engine.search(marker, K) == [doc_id]
        advance(1)
    return {k: round(v, 4) for k, v in percentiles(samples).items()} | {"n": len(texts), "visible": visible}


def synthetic_engine(name: str) -> dict[str, Any]:
    w = _WORK
    n, nq, label = w["n"], w["nq"], size_label(w["n"])
    engine = make(name, Path(tempfile.mkdtemp(dir=w["tmp"], prefix=f"synthetic-{name}-")))
    try:
        row: dict[str, Any] = {"build": build(engine, w["parts"], label), "note": engine.note}
        row["stats"] = engine.stats()
        row["latency_ms"], row["agreement"] = {}, {}
        for kind, (qs, dec) in w["kinds"].items():
            if dec is not None and not engine.filters:
                continue
            for q in qs[:WARMUP]:
                engine.search(q, K, dec)
            with progress(f"{label}: {name} {kind} queries", nq) as advance:
                found, row["latency_ms"][kind] = run_queries(engine, qs[WARMUP:], dec, advance)
            row["agreement"][kind] = agreement(found, w["reference"][kind])
        if engine.writes and w["write_texts"]:
            with progress(f"{label}: {name} single-document writes", len(w["write_texts"])) as advance:
                row["write_ms"] = writes(engine, w["write_texts"], n, advance)
    finally:
        engine.close()
    lat = row["latency_ms"]
    print(f"{label} {name}: {row['build']['docs_per_s']:,.0f} docs/s, short p50 "
          f"{lat['short']['p50']:.3f} ms, long p50 {lat['long']['p50']:.3f} ms", file=sys.stderr)  # fmt: skip
    return row


def synthetic(args: argparse.Namespace, names: list[str], failures: list[str]) -> dict[str, Any]:
    n, nq = args.docs, args.queries
    world = Synthetic(args.seed)
    targets = world.query_targets(nq + WARMUP, n)
    long_targets = np.random.default_rng([args.seed, 7]).choice(n, size=nq + WARMUP, replace=nq + WARMUP > n)
    parts, ranks, ref = corpus(world, n, np.concatenate([targets, long_targets]))
    rng = np.random.default_rng([args.seed, 6])
    short = [world.bm25_query(ranks[int(t)], rng) for t in targets]
    rng = np.random.default_rng([args.seed, 8])
    long = [long_query(world, ranks[int(t)], rng) for t in long_targets]
    allowed = np.concatenate([p[2] for p in parts]) == DECILE
    kinds = {"short": (short, None), "long": (long, None), "filtered": (short, DECILE)}
    reference = {}
    with progress("exact reference top 10s", 3 * nq) as advance:
        for kind, (qs, dec) in kinds.items():
            reference[kind] = [ref.top(q, K, allowed if dec is not None else None) for q in qs[WARMUP:]]
            advance(nq)
    del ref
    gc.collect()
    pick = np.random.default_rng([args.seed, 9]).choice(n, size=args.writes, replace=args.writes > n)
    write_texts = [parts[i // CHUNK][1][i % CHUNK] for i in pick.tolist()]
    _WORK.update(n=n, nq=nq, parts=parts, kinds=kinds, reference=reference, write_texts=write_texts)
    out: dict[str, Any] = {"docs": n, "queries": nq, "writes": args.writes, "engines": {}}
    for name in names:
        row = isolated(synthetic_engine, name, failures)
        if row is not None:
            out["engines"][name] = row
    return out


def available(names: list[str]) -> dict[str, str]:
    skipped = {}
    for name in names:
        try:
            __import__({"fts5": "sqlite3", "siftline": "siftline", "tantivy-ram": "tantivy"}.get(name, name))
        except ImportError:
            skipped[name] = f"not installed (`pip install {name.split('-')[0]}`)"
    return skipped


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100_000, help="synthetic documents")
    parser.add_argument(
        "--queries", type=int, default=200, help="measured queries of each kind (after 20 warm-up)"
    )
    parser.add_argument("--writes", type=int, default=200, help="single-document writes into the built index")
    parser.add_argument("--scifact", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--scifact-queries", type=int, default=0, help="first N judged train claims (0: all)")
    parser.add_argument("--no-scifact", action="store_true")
    parser.add_argument(
        "--engines", default=",".join(ENGINES), help=f"comma-separated, of {', '.join(ENGINES)}"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tmp-dir", type=Path, help="where the engines' temporary directories go")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--no-write", action="store_true", help="do not write docs/BENCHMARKS.md")
    args = parser.parse_args()
    command = shlex.join(["python", "benchmarks/bm25_engines.py", *sys.argv[1:]])
    names = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in names if e not in ENGINES]
    if unknown:
        parser.error(f"unknown engines: {', '.join(unknown)}")
    skipped = available(names)
    for name, why in skipped.items():
        print(f"{name}: skipped, {why}", file=sys.stderr)
    failures: list[str] = []
    fig: dict[str, Any] = {
        "command": command,
        "seed": args.seed,
        "k": K,
        "skipped": skipped,
        "failures": failures,
    }
    names = [name for name in names if name not in skipped]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.tmp_dir, prefix="siftline-bm25-") as tmp:
        _WORK["tmp"] = tmp
        if not args.no_scifact:
            fig["scifact"] = scifact(args, names, failures)
        fig["synthetic"] = synthetic(args, names, failures)
    fig["seconds"] = round(time.perf_counter() - t0, 1)
    table = render(fig)
    print(table)
    if args.json:
        args.json.write_text(orjson.dumps(fig, option=orjson.OPT_INDENT_2).decode())
    if not args.no_write:
        label = size_label(args.docs)
        write_section(f"bm25-engines-{label}", f"BM25 engines: SciFact and {label} synthetic documents",
                      command, table)  # fmt: skip
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
