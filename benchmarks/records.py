"""The cost of execution records: the same execution with recording on and off, in one process.

    python benchmarks/records.py [--runs 2000]

Two executors share one SQLite data directory; one records every run (start + end writes, as a fast
run does), the other has recording disabled. Runs alternate so machine noise hits both alike; the
figure is the difference of the medians (and their ratio).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.progress import track

from report import percentiles, write_section
from siftline.config import Settings
from siftline.models import Namespace
from siftline.service import collections, namespaces
from siftline.service.container import Services
from siftline.service.execute import Executor
from siftline.service.records import Recorder

STAGES = [
    {
        "stage_name": "search",
        "config": {
            "stage_id": "feature_search",
            "parameters": {
                "searches": [
                    {"feature_uri": "mixpeek://vectors@v1/emb", "query": "{{INPUT.v}}", "top_k": 20}
                ],
                "final_top_k": 10,
            },
        },
    },
    {"stage_name": "top", "config": {"stage_id": "limit", "parameters": {"limit": 5}}},
]


def setup(svc: Services) -> Namespace:
    ns = namespaces.ensure_namespace(svc.storage, "default")
    col = collections.create(
        svc.storage, ns, collection_name="bench", vector_configs=[{"name": "emb", "dimension": 64}]
    )
    rng = np.random.default_rng(3)
    body = {"documents": [{"n": i, "vectors": {"emb": rng.normal(size=64).tolist()}} for i in range(1000)]}
    svc.documents.create_batch(col, body)
    return ns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        svc = Services.open(Settings(data_dir=Path(tmp) / "data"))
        try:
            ns = setup(svc)
            on = Executor(svc.storage, svc.embedder, Recorder(svc.storage, enabled=True))
            off = Executor(svc.storage, svc.embedder, Recorder(svc.storage, enabled=False))
            body = {
                "collection_identifiers": ["bench"],
                "input_schema": {"v": {"type": "array"}},
                "stages": STAGES,
                "limit": 5,
            }
            rng = np.random.default_rng(5)
            timings: dict[str, list[float]] = {"on": [], "off": []}
            for i in track(range(args.runs * 2), description="executions (recording on/off alternating)"):
                mode, executor = ("on", on) if i % 2 == 0 else ("off", off)
                request = {**body, "inputs": {"v": rng.normal(size=64).tolist()}}
                t0 = time.perf_counter()
                result = executor.execute_adhoc(ns, request)
                timings[mode].append((time.perf_counter() - t0) * 1000)
                assert result["status"] == "completed"
            stored = svc.storage.list_executions(ns.namespace_id, mode="adhoc", limit=1)[1]
        finally:
            svc.close()
    p_on, p_off = percentiles(timings["on"]), percentiles(timings["off"])
    delta = p_on["p50"] - p_off["p50"]
    table = (
        "| execution (vector search over 1,000 docs + limit), in process | p50 | p95 | p99 |\n|---|---|---|---|\n"
        f"| recording on | {p_on['p50']:.3f} ms | {p_on['p95']:.3f} ms | {p_on['p99']:.3f} ms |\n"
        f"| recording off | {p_off['p50']:.3f} ms | {p_off['p95']:.3f} ms | {p_off['p99']:.3f} ms |\n\n"
        f"Cost of the record at p50: **{delta:.3f} ms** per execution (ratio on/off {p_on['p50'] / p_off['p50']:.2f}); "
        f"{args.runs:,} runs each, alternating; {stored:,} records written. Target: under 1 ms.\n"
    )
    print(table)
    if not args.no_write:
        write_section(
            "records",
            "Cost of execution records",
            f"python benchmarks/records.py --runs {args.runs}",
            table,
        )


if __name__ == "__main__":
    main()
