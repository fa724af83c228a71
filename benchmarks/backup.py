"""Online backup and restore of a data directory: time, size, writes during the backup, index rebuild.

    python benchmarks/backup.py --docs 20000      # ~1 min on 2 cores

A real server gets N synthetic documents (``benchmarks/synthetic.py``: 384-d vectors supplied, text for
BM25). Then, while ``--writers`` clients keep writing batches of 10 documents to it:

1. ``siftline backup`` from its own process (wall time of the command, which also verifies the copy;
   the manifest's own timings: the database copy, and the whole backup before verification); the
   writes' latency before and during the backup, and how many were acknowledged during it.
2. ``siftline verify`` of the backup and ``siftline restore`` into a new directory (wall times), sizes.
3. The original server stops, and a server starts on the restored directory. The original had saved no
   index files (a server writes them when it stops), so the backup has none: the first dense search
   loads the vectors from SQLite and the HNSW index is rebuilt in the background. Measured: start until
   healthy, the first dense and the first BM25 search, and the time until the index has nothing pending
   (``GET …/vector-index``).
4. The same with a second backup of the original, stopped once its index had settled (its graceful stop
   saved the index, so this backup copies the index files): the index is used as is.

Figures are printed and, unless ``--no-write``, written to docs/BENCHMARKS.md (section ``backup``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from report import percentiles, write_section
from siftline.testing.server import Server, siftline, start_with_key
from synthetic import COLLECTION, DENSE_FEATURE, DIM, Synthetic

COLL = COLLECTION["collection_name"]
DENSE = f"mixpeek://text_extractor@v1/{DENSE_FEATURE}"
BM25 = "mixpeek://text_extractor@v1/bm25"
BATCH = 1000


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def ingest(http: httpx.Client, n: int) -> float:
    world = Synthetic(seed=7)
    t0 = time.perf_counter()
    for index in range(world.chunks(n)):
        chunk = world.chunk(index, n)
        for lo in range(0, len(chunk), BATCH):
            body = orjson.dumps({"documents": chunk.documents(lo, lo + BATCH)})
            done = http.post(f"/v1/collections/{COLL}/documents/batch", content=body,
                             headers={"Content-Type": "application/json"})  # fmt: skip
            done.raise_for_status()
    return time.perf_counter() - t0


class Writers:
    """Clients writing batches of 10 new documents until stopped: (sent, seconds) of each write."""

    def __init__(self, url: str, key: str, count: int) -> None:
        self.url, self.key = url, key
        self.stop = threading.Event()
        self.samples: list[tuple[float, float]] = []
        self.failures = 0
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(count)]

    def run(self, n: int) -> None:
        rng = np.random.default_rng(100 + n)
        with httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=120
        ) as http:
            i = 0
            while not self.stop.is_set():
                docs = [{"document_id": f"w{n}-{i}-{j}", "text": f"written while backing up {i} {j}",
                         "vectors": {DENSE_FEATURE: rng.standard_normal(DIM).tolist()}} for j in range(10)]  # fmt: skip
                sent = time.monotonic()
                done = http.post(f"/v1/collections/{COLL}/documents/batch", json={"documents": docs})
                self.samples.append((sent, time.monotonic() - sent))
                self.failures += done.status_code != 200
                i += 1

    def between(self, t0: float, t1: float) -> list[float]:
        return [s * 1000 for sent, s in self.samples if t0 <= sent < t1]


def search(http: httpx.Client, uri: str, query: Any) -> float:
    mode = "text" if isinstance(query, str) else "vector"
    body = {"collection_identifiers": [COLL], "stages": [{"stage_name": "s", "config": {
        "stage_id": "feature_search", "parameters": {"final_top_k": 10, "searches": [
            {"feature_uri": uri, "query": {"input_mode": mode, "value": query}, "top_k": 10}]}}}]}  # fmt: skip
    t0 = time.perf_counter()
    done = http.post("/v1/retrievers/execute", json=body)
    done.raise_for_status()
    return time.perf_counter() - t0


def timed(*args: str) -> tuple[float, Any]:
    t0 = time.perf_counter()
    run = siftline(*args)
    if run.returncode != 0:
        raise SystemExit(f"siftline {' '.join(args)} failed: {run.stderr[-2000:]}")
    return time.perf_counter() - t0, run


def settle(http: httpx.Client) -> str:
    """Wait until the dense feature's index has nothing pending and no build running; its search path."""
    while True:
        status = http.get(f"/v1/collections/{COLL}/vector-index").json()["features"][0]
        if status["pending"] == 0 and not status["building"]:
            return str(status["path"])
        time.sleep(0.1)


def restored_server(backup: Path, target: Path, key: str) -> dict[str, float]:
    """Restore ``backup`` into ``target``, start a server on it, and time what it takes to serve."""
    restore_s, _ = timed("restore", str(backup), "--data-dir", str(target))
    t0 = time.perf_counter()
    server = Server(target).start()
    figures = {"restore_s": restore_s, "start_s": time.perf_counter() - t0}
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=600
        ) as http:
            figures["first_dense_s"] = search(
                http, DENSE, np.random.default_rng(1).standard_normal(DIM).tolist()
            )
            figures["first_bm25_s"] = search(http, BM25, "kato ripu sula")
            figures["path"] = settle(http)  # type: ignore[assignment]
            figures["indexed_s"] = time.perf_counter() - t0
            figures["next_dense_s"] = search(
                http, DENSE, np.random.default_rng(2).standard_normal(DIM).tolist()
            )
    finally:
        server.kill()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="siftline-backup-bench-") as tmp_name:
        tmp = Path(tmp_name)
        server, key = start_with_key(tmp / "data")
        try:
            with httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=600
            ) as http:
                http.post("/v1/collections", json=COLLECTION).raise_for_status()
                ingest_s = ingest(http, args.docs)
                search(http, DENSE, np.random.default_rng(0).standard_normal(DIM).tolist())  # load the index
            writers = Writers(server.url, key, args.writers)
            for t in writers.threads:
                t.start()
            time.sleep(3.0)
            before_at = time.monotonic()
            backup_s, _ = timed("backup", str(tmp / "backup"), "--data-dir", str(tmp / "data"))
            after_at = time.monotonic()
            time.sleep(1.0)
            writers.stop.set()
            for t in writers.threads:
                t.join()
            manifest = json.loads((tmp / "backup" / "manifest.json").read_text())
            verify_s, _ = timed("verify", str(tmp / "backup"))
            data_bytes = size_of(tmp / "data")
            with httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=600
            ) as http:
                settle(http)  # the writes' vectors indexed: the index saved at the stop has nothing pending
            server.stop()  # graceful: the server saves its vector index (and builds nothing beside the next)
            cold = restored_server(tmp / "backup", tmp / "restored", key)
            warm_backup_s, _ = timed("backup", str(tmp / "backup-stopped"), "--data-dir", str(tmp / "data"))
            warm_manifest = json.loads((tmp / "backup-stopped" / "manifest.json").read_text())
            warm = restored_server(tmp / "backup-stopped", tmp / "restored-stopped", key)
        finally:
            server.kill()
        base = writers.between(before_at - 3.0, before_at)
        during = writers.between(before_at, after_at)
        figures = {
            "docs": manifest["census"]["totals"]["documents"], "ingest_s": ingest_s, "loaded": args.docs,
            "writers": args.writers,
            "backup_cli_s": backup_s, "backup_db_s": manifest["seconds"]["database"],
            "backup_total_s": manifest["seconds"]["total"], "verify_cli_s": verify_s,
            "data_dir_bytes": data_bytes, "backup_bytes": sum(f["bytes"] for f in manifest["files"]),
            "writes_before": percentiles(base), "writes_during": percentiles(during),
            "writes_during_n": len(during), "writes_during_max_ms": max(during), "write_failures": writers.failures,
            "cold": cold, "warm": warm, "warm_backup_cli_s": warm_backup_s,
            "warm_backup_bytes": sum(f["bytes"] for f in warm_manifest["files"]),
            "warm_indexes": warm_manifest["indexes"],
        }  # fmt: skip
    print(json.dumps(figures, indent=2))
    if not args.no_write:
        write_section("backup", f"Backup and restore: {args.docs:,} documents (384-d, text) under writes",
                      f"python benchmarks/backup.py --docs {args.docs} --writers {args.writers}", report(figures))  # fmt: skip


def report(f: dict[str, Any]) -> str:
    mib = 1 << 20
    wb, wd, cold, warm = f["writes_before"], f["writes_during"], f["cold"], f["warm"]
    return f"""
A live server loaded with {f["loaded"]:,} documents (384-d vectors supplied, BM25 text, three payload indexes), then
{f["writers"]} clients writing batches of 10 new documents throughout: {f["docs"]:,} documents in the backup's snapshot.

| step | time | size |
|---|---|---|
| `siftline backup` (process start, copy, checksums, verify) | {f["backup_cli_s"]:.2f} s | {f["backup_bytes"] / mib:.1f} MiB (data directory: {f["data_dir_bytes"] / mib:.1f} MiB) |
| — of which the database copy (one snapshot) | {f["backup_db_s"]:.2f} s | |
| — of which the whole backup before verifying | {f["backup_total_s"]:.2f} s | |
| `siftline verify` of the backup | {f["verify_cli_s"]:.2f} s | |
| `siftline restore` | {cold["restore_s"]:.2f} s | |

Writes (batches of 10) while the backup ran: {f["writes_during_n"]} acknowledged, none failed ({f["write_failures"]} failures
overall); latency p50 {wd["p50"]:.1f} ms, p99 {wd["p99"]:.1f} ms, max {f["writes_during_max_ms"]:.0f} ms (3 s before it: p50
{wb["p50"]:.1f} ms, p99 {wb["p99"]:.1f} ms).

A server on the restored directory:

| backup of | index files in the backup | start | first dense search | first BM25 search | index settled ({cold["path"]}) |
|---|---|---|---|---|---|
| the live server | none (rebuilt) | {cold["start_s"]:.2f} s | {cold["first_dense_s"] * 1000:.0f} ms | {cold["first_bm25_s"] * 1000:.0f} ms | {cold["indexed_s"]:.1f} s after start |
| the stopped server | copied ({f["warm_backup_bytes"] / mib:.1f} MiB backup) | {warm["start_s"]:.2f} s | {warm["first_dense_s"] * 1000:.0f} ms | {warm["first_bm25_s"] * 1000:.0f} ms | {warm["indexed_s"]:.1f} s after start |

A running server writes its index files only when it stops, so a backup of a server that has taken
writes since it started carries none: the first dense search loads the vectors from SQLite and answers
exactly, while the HNSW index is built in the background (searches meanwhile scan what is not indexed yet).
"""


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    main()
