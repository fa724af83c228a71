"""SciFact over HTTP: how fast a hybrid text query is, and BM25 quality with the engine in use.

A real server on 127.0.0.1 over a fresh data directory (or ``--data-dir``) loads the SciFact abstracts
into the collection ``scifact`` (text extractor, title + text): BM25 is indexed by the server, and the
MiniLM vectors of title + text are computed here once (``quality.corpus_embeddings``, cached in
``--cache-dir``) and supplied with the documents, so loading takes seconds instead of the ~6 minutes of
embedding. Then each training claim with judgements is executed ad hoc (POST /v1/retrievers/execute,
one keep-alive http.client connection, measured at the client) by three retrievers, interleaved: BM25
alone, dense alone (the server embeds the claim: MiniLM int8), and the RRF hybrid of both (top_k 100
each, RRF k = 60, final_top_k 100, limit 10) — ``benchmarks/quality.py``'s retrievers. Query
embeddings are not served from a cache (each claim is new to the server); execution records are on.

Prints p50/p95 per retriever and nDCG@10 per retriever; unless ``--no-write`` writes section
``scifact-speed`` of docs/BENCHMARKS.md; ``--json PATH`` writes every figure. Targets (issue 12): hybrid
p50 ≤ 10 ms, BM25 nDCG@10 ≥ 0.70 (exit 1 when missed, unless ``--ignore-targets``).

    python benchmarks/scifact_speed.py                      # ~1 min after the first run's embedding
    python benchmarks/scifact_speed.py --docs 300 --queries 20 --no-write --ignore-targets   # smoke
"""

from __future__ import annotations

import argparse
import base64
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from beir import load_corpus, load_qrels, load_queries, mean_ndcg
from quality import CUTOFF, METHODS, corpus_embeddings, progress_bar, retriever_stages
from report import percentiles, write_section
from scale import RawClient, checked
from siftline.features.embedder import TextEmbedder
from siftline.testing.server import Server, siftline

ROOT = Path(__file__).resolve().parents[1]
COLLECTION = "scifact"
TARGET_HYBRID_P50_MS = 10.0
TARGET_BM25_NDCG = 0.70


def load(http: httpx.Client, docs: list[Any], vectors: np.ndarray, batch: int = 1000) -> float:
    extractor = {
        "feature_extractor_name": "text_extractor",
        "version": "v1",
        "input_mappings": {"text": ["title", "text"]},
    }
    if http.get(f"/v1/collections/{COLLECTION}").status_code == 404:
        checked(
            http.post("/v1/collections", json={"collection_name": COLLECTION, "feature_extractor": extractor})
        )
    t0 = time.perf_counter()
    with progress_bar(f"loading {len(docs):,} abstracts (vectors supplied)", len(docs)) as advance:
        for start in range(0, len(docs), batch):
            rows = [
                {
                    "document_id": d.doc_id,
                    "title": d.title,
                    "text": d.text,
                    "vectors": {
                        "all_minilm_l6_v2": base64.b64encode(
                            vectors[start + i].astype("<f4").tobytes()
                        ).decode()
                    },
                }
                for i, d in enumerate(docs[start : start + batch])
            ]
            checked(http.post(f"/v1/collections/{COLLECTION}/documents/batch", content=orjson.dumps({"documents": rows}),
                              headers={"Content-Type": "application/json"}))  # fmt: skip
            advance(len(rows))
    return time.perf_counter() - t0


def run(
    client: RawClient, queries: list[tuple[str, str]], warmup: int
) -> tuple[dict[str, dict[str, list[str]]], dict[str, list[float]]]:
    stages = {m: retriever_stages(m) for m in METHODS}
    runs: dict[str, dict[str, list[str]]] = {m: {} for m in METHODS}
    latency: dict[str, list[float]] = {m: [] for m in METHODS}
    with progress_bar(
        f"{len(queries):,} claims x {len(METHODS)} retrievers over HTTP", len(queries)
    ) as advance:
        for n, (qid, text) in enumerate(queries):
            for method in METHODS:
                body = orjson.dumps(
                    {
                        "collection_identifiers": [COLLECTION],
                        "input_schema": {"query": {"type": "text", "required": True}},
                        "inputs": {"query": text},
                        "limit": CUTOFF,
                        "stages": stages[method],
                    }
                )
                t0 = time.perf_counter()
                data = orjson.loads(client.request("POST", "/v1/retrievers/execute", body))
                elapsed = (time.perf_counter() - t0) * 1000
                if data.get("error"):
                    raise RuntimeError(f"{method} failed on claim {qid}: {data['error']}")
                if n >= warmup:
                    latency[method].append(elapsed)
                runs[method][qid] = [d["document_id"] for d in data["documents"]]
            advance(1)
    return runs, latency


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scifact", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--docs", type=int, help="only the first N abstracts (smoke runs)")
    parser.add_argument("--queries", type=int, help="only the first N judged claims")
    parser.add_argument("--warmup", type=int, default=5, help="claims run first and not timed")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "siftline-bench")
    parser.add_argument("--data-dir", type=Path, help="keep the server's data here (default: a temp dir)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--ignore-targets", action="store_true")
    args = parser.parse_args()

    docs = load_corpus(args.scifact)[: args.docs]
    qrels = load_qrels(args.scifact, "train")
    queries = [(q, t) for q, t in load_queries(args.scifact, "train") if q in qrels][: args.queries]
    vectors = corpus_embeddings(TextEmbedder(), docs, args.cache_dir)
    with tempfile.TemporaryDirectory(prefix="siftline-scifact-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        key = siftline("keys", "create", "--data-dir", str(data_dir)).stdout.strip().splitlines()[-1]
        # no query-embedding cache: the three retrievers of a claim each embed it (else the hybrid would
        # reuse the dense retriever's embedding of the same claim)
        server = Server(data_dir, env={"SIFTLINE_EMBEDDING_CACHE_SIZE": "0"}).start()
        try:
            http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=600)
            load_s = load(http, docs, vectors)
            client = RawClient(server.url, key)
            runs, latency = run(client, queries, args.warmup)
            client.close()
        finally:
            server.stop()
    judged = {q: qrels[q] for q, _ in queries}
    fig: dict[str, Any] = {"documents": len(docs), "claims": len(queries), "load_s": load_s, "methods": {}}
    for method in METHODS:
        p = percentiles(latency[method])
        fig["methods"][method] = {"ndcg@10": mean_ndcg(runs[method], judged, list(judged), CUTOFF), **p}
    hybrid_p50 = fig["methods"]["RRF hybrid"]["p50"]
    bm25_ndcg = fig["methods"]["BM25"]["ndcg@10"]
    fig["targets"] = {
        "hybrid_p50_ms": {
            "target": TARGET_HYBRID_P50_MS,
            "value": hybrid_p50,
            "met": hybrid_p50 <= TARGET_HYBRID_P50_MS,
        },
        "bm25_ndcg@10": {
            "target": TARGET_BM25_NDCG,
            "value": bm25_ndcg,
            "met": bm25_ndcg >= TARGET_BM25_NDCG,
        },
    }
    command = "python benchmarks/scifact_speed.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    text = render(fig)
    print(text)
    if args.json:
        args.json.write_text(orjson.dumps(fig, option=orjson.OPT_INDENT_2).decode())
    if not args.no_write:
        write_section(
            "scifact-speed", "SciFact over HTTP: hybrid latency and BM25 quality", command.strip(), text
        )
    missed = [k for k, v in fig["targets"].items() if not v["met"]]
    return 1 if missed and not args.ignore_targets else 0


def render(fig: dict[str, Any]) -> str:
    lines = [
        f"{fig['documents']:,} abstracts loaded in {fig['load_s']:.1f} s (vectors "
        f"supplied, BM25 indexed by the server); {fig['claims']} judged training claims, each executed ad hoc by "
        "the three retrievers of `benchmarks/quality.py` (top_k 100 per search, RRF k = 60, limit 10) on one "
        "keep-alive connection; the dense searches embed the claim on the server (MiniLM int8, the query-embedding cache off: every dense leg embeds).",
        "",
        "| retriever | nDCG@10 | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    for method, m in fig["methods"].items():
        lines.append(f"| {method} | {m['ndcg@10']:.4f} | {m['p50']:.2f} | {m['p95']:.2f} | {m['p99']:.2f} |")
    t = fig["targets"]
    lines += [
        "",
        f"Targets: hybrid p50 ≤ {t['hybrid_p50_ms']['target']:.0f} ms: {t['hybrid_p50_ms']['value']:.2f} ms "
        f"({'met' if t['hybrid_p50_ms']['met'] else 'missed'}); BM25 nDCG@10 ≥ {t['bm25_ndcg@10']['target']:.2f}: "
        f"{t['bm25_ndcg@10']['value']:.4f} ({'met' if t['bm25_ndcg@10']['met'] else 'missed'}).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
