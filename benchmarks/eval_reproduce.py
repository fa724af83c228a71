"""The evaluations API reproduces benchmarks/quality.py's nDCG@10 (issue 11, acceptance 5).

Against a real server with SciFact loaded (as quality.py loads it), in one run:
- *quality.py's way*: each judged training claim executed ad hoc with quality.py's "RRF hybrid" stages
  (BM25 + dense, top_k 100 each, RRF k = 60, final_top_k 100, limit 10), nDCG@10 by
  ``benchmarks/beir.py``'s ``mean_ndcg``;
- *the evaluations API*: a saved retriever with the same stages, the same claims uploaded as a dataset
  (``POST /v1/retrievers/evaluations/datasets``), ``POST /v1/retrievers/{id}/evaluations`` polled to the
  end, and its ``metrics_by_k["10"]["ndcg"]``.
The two must agree to 4 decimals. ``--data-dir`` reuses a server data directory that already holds the
collection (loading SciFact embeds 5,183 abstracts: about 8 minutes on 2 cores).

    python benchmarks/eval_reproduce.py --data-dir /tmp/scifact-data
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from beir import load_corpus, load_qrels, load_queries, mean_ndcg
from quality import COLLECTION, CUTOFF, ROOT, checked, ensure_loaded, progress_bar, retriever_stages
from report import write_section
from siftline.testing.server import start_with_key


def quality_way(http: httpx.Client, queries: list[tuple[str, str]], collection: str) -> dict[str, list[str]]:
    runs: dict[str, list[str]] = {}
    stages = retriever_stages("RRF hybrid")
    with progress_bar(f"{len(queries):,} claims ad hoc, as quality.py runs them", len(queries)) as advance:
        for qid, text in queries:
            body = {"collection_identifiers": [collection], "stages": stages, "inputs": {"query": text},
                    "input_schema": {"query": {"type": "text", "required": True}}, "limit": CUTOFF}  # fmt: skip
            runs[qid] = [
                d["document_id"]
                for d in checked(http.post("/v1/retrievers/execute", json=body)).json()["documents"]
            ]
            advance(1)
    return runs


def evaluations_way(
    http: httpx.Client,
    queries: list[tuple[str, str]],
    qrels: dict[str, dict[str, int]],
    tag: str,
    collection: str,
) -> dict[str, Any]:
    retriever = checked(
        http.post(
            "/v1/retrievers",
            json={
                "retriever_name": f"hybrid-{tag}",
                "collection_identifiers": [collection],
                "stages": retriever_stages("RRF hybrid"),
                "input_schema": {"query": {"type": "text", "required": True}},
            },
        )
    ).json()["retriever_id"]
    dataset = {
        "dataset_name": f"scifact-train-{tag}",
        "queries": [
            {"query_id": q, "query_input": {"query": t},
             "relevant_documents": [d for d, g in qrels[q].items() if g > 0], "relevance_scores": qrels[q]}
            for q, t in queries
        ],
    }  # fmt: skip
    checked(http.post("/v1/retrievers/evaluations/datasets", json=dataset))
    started = checked(
        http.post(f"/v1/retrievers/{retriever}/evaluations", json={"dataset_name": dataset["dataset_name"]})
    )
    evaluation = started.json()["evaluation_id"]
    with progress_bar("the evaluations API (background run, polled)", len(queries)) as advance:
        done = 0
        for _ in range(36_000):
            record = checked(http.get(f"/v1/retrievers/{retriever}/evaluations/{evaluation}")).json()
            now = int(record.get("progress", {}).get("done", 0))
            advance(now - done)
            done = now
            if record["status"] in ("completed", "failed"):
                break
            time.sleep(0.5)
    if record["status"] != "completed":
        raise RuntimeError(f"evaluation {evaluation} ended {record['status']}: {record.get('error_message')}")
    return record


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scifact", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--data-dir", type=Path, help="server data directory to create or reuse")
    parser.add_argument(
        "--collection", default=COLLECTION, help="the SciFact collection (loaded when missing)"
    )
    parser.add_argument("--queries", type=int, help="only the first N judged training claims (a smoke run)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args()
    docs = load_corpus(args.scifact)
    qrels = load_qrels(args.scifact, "train")
    queries = [(q, t) for q, t in load_queries(args.scifact, "train") if q in qrels][: args.queries]
    qids = [q for q, _ in queries]
    with tempfile.TemporaryDirectory() as tmp:
        server, key = start_with_key(args.data_dir or Path(tmp) / "data")
        try:
            with httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=900
            ) as http:
                ensure_loaded(http, docs, 256, collection=args.collection)
                expected = mean_ndcg(quality_way(http, queries, args.collection), qrels, qids, CUTOFF)
                record = evaluations_way(http, queries, qrels, str(int(time.time())), args.collection)
        finally:
            server.stop()
    got = float(record["metrics_by_k"][str(CUTOFF)]["ndcg"])
    same = round(got, 4) == round(expected, 4)
    body = (
        f'{len(queries):,} judged SciFact training claims, quality.py\'s "RRF hybrid" stages (BM25 + dense, top_k 100, '
        "RRF k = 60).\n\n"
        "| how | nDCG@10 |\n|---|---|\n"
        f"| quality.py's way (ad hoc executions, `beir.mean_ndcg`) | {expected:.4f} |\n"
        f'| the evaluations API (`metrics_by_k["10"]["ndcg"]`, {record["evaluated_queries"]} evaluated) | {got:.4f} |\n\n'
        f"- agree to 4 decimals: **{'yes' if same else 'NO'}** (difference {got - expected:+.6f})\n"
    )
    print(body)
    if not args.no_write:
        command = "python benchmarks/eval_reproduce.py" + (
            f" --queries {args.queries}" if args.queries else ""
        )
        write_section(
            "eval-reproduce", "Evaluations API against quality.py (SciFact, nDCG@10)", command, body
        )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
