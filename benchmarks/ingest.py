"""Ingest throughput over HTTP against a real server on 127.0.0.1.

Two figures, side by side in one run:
- supplied vectors: N synthetic documents (384-d vectors with low-rank structure, metadata of
  several cardinalities) through POST …/documents/batch into a vectors-only collection;
- with embedding: the SciFact corpus (title + text embedded by the built-in model, BM25-indexed)
  through the same route.

    python benchmarks/ingest.py [--docs 10000] [--batch 1000] [--scifact ../shared/data/scifact]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
from rich.progress import Progress

from report import write_section
from siftline.testing.server import Server, siftline

ROOT = Path(__file__).resolve().parents[1]


def synthetic(n: int, dim: int = 384, seed: int = 7) -> Iterator[dict[str, object]]:
    """Documents whose vectors are a low-rank latent plus noise (not i.i.d. Gaussian)."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(16, dim)).astype(np.float32)
    for start in range(0, n, 1000):
        m = min(1000, n - start)
        vectors = rng.normal(size=(m, 16)).astype(np.float32) @ basis + 0.3 * rng.normal(size=(m, dim))
        for i in range(m):
            k = start + i
            yield {
                "document_id": f"d{k}",
                "category": f"c{k % 10}",
                "tenant": f"t{k % 1000}",
                "year": 1990 + k % 35,
                "vectors": {"emb": [round(float(x), 6) for x in vectors[i]]},
            }


def batches(items: Iterator[dict[str, object]], size: int) -> Iterator[list[dict[str, object]]]:
    batch: list[dict[str, object]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def post_all(http: httpx.Client, collection: str, docs: Iterator[dict[str, object]], total: int, size: int,
             label: str) -> float:  # fmt: skip
    """POST every batch; returns the seconds spent inside the requests (encoding excluded)."""
    spent = 0.0
    with Progress() as progress:
        task = progress.add_task(label, total=total)
        for batch in batches(docs, size):
            body = json.dumps({"documents": batch}).encode()
            t0 = time.perf_counter()
            response = http.post(
                f"/v1/collections/{collection}/documents/batch",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            spent += time.perf_counter() - t0
            response.raise_for_status()
            progress.advance(task, len(batch))
    return spent


def scifact_docs(folder: Path) -> list[dict[str, object]]:
    with (folder / "corpus.jsonl").open() as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [{"document_id": r["_id"], "title": r["title"], "text": r["text"]} for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--embed-batch", type=int, default=256)
    parser.add_argument("--scifact", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        server = Server(data_dir).start()
        try:
            key = siftline("keys", "create", "--data-dir", str(data_dir)).stdout.strip().splitlines()[-1]
            http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=600)
            http.post(
                "/v1/collections",
                json={"collection_name": "synthetic", "vector_configs": [{"name": "emb", "dimension": 384}]},
            ).raise_for_status()
            supplied_s = post_all(
                http, "synthetic", synthetic(args.docs), args.docs, args.batch, "supplied vectors"
            )
            rows = [f"| supplied 384-d vectors, batches of {args.batch} | {args.docs:,} | {supplied_s:.1f} s "
                    f"| {args.docs / supplied_s:,.0f} |"]  # fmt: skip
            if (args.scifact / "corpus.jsonl").is_file():
                docs = scifact_docs(args.scifact)
                http.post(
                    "/v1/collections",
                    json={
                        "collection_name": "scifact",
                        "feature_extractor": {
                            "feature_extractor_name": "text_extractor",
                            "input_mappings": {"text": ["title", "text"]},
                        },
                    },
                ).raise_for_status()
                embed_s = post_all(http, "scifact", iter(docs), len(docs), args.embed_batch, "with embedding")
                rows.append(f"| SciFact title + text embedded (MiniLM int8, 256 tokens) and BM25-indexed, "
                            f"batches of {args.embed_batch} | {len(docs):,} | {embed_s:.1f} s "
                            f"| {len(docs) / embed_s:,.0f} |")  # fmt: skip
            http.close()
        finally:
            server.stop()
    table = "| ingest over HTTP (POST …/documents/batch) | documents | time | docs/s |\n|---|---|---|---|\n"
    table += "\n".join(rows) + "\n"
    print(table)
    if not args.no_write:
        write_section(
            "ingest",
            "Ingest throughput over HTTP",
            f"python benchmarks/ingest.py --docs {args.docs} --batch {args.batch}",
            "Time inside the HTTP requests (client-side JSON encoding excluded), one client, real server on "
            "127.0.0.1, fresh data directory.\n\n" + table,
        )


if __name__ == "__main__":
    main()
