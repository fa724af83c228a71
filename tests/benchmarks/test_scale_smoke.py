"""The scale benchmark end to end at 10k documents (HNSW threshold 2,000, so the HNSW path is taken).

Runs ``benchmarks/scale.py --docs 10000 --queries 30 --no-write --hnsw-threshold 2000 --json …`` as a
subprocess against a real server and checks its figures: it exits 0, prints every figure, dense
recall@10 against exact search is at least 0.9, and the unfiltered dense query went through HNSW.
About half a minute on 2 cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUERY_TYPES = (
    "dense",
    "dense + 10% filter",
    "dense + 1% filter",
    "BM25",
    "hybrid",
    "hybrid + 10% filter",
    "hybrid + 1% filter",
)


@pytest.mark.slow
@pytest.mark.timeout(660)
def test_scale_benchmark_at_10k(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/scale.py", "--docs", "10000", "--queries", "30", "--no-write",
         "--hnsw-threshold", "2000", "--json", str(out), "--tmp-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-5000:]}"
    fig = json.loads(out.read_text())
    assert fig["failures"] == []

    assert fig["ingest"]["docs_per_s"] > 0
    assert fig["index"]["seconds"] >= 0
    for name in QUERY_TYPES:
        row = fig["latency"][name]
        assert 0 < row["p50"] <= row["p95"] <= row["p99"], name
        # a dense search always fills its top 10; a BM25-only one may match fewer documents
        assert row["returned_min"] == 10 if name != "BM25" else row["returned_min"] >= 1, name
    dense = fig["latency"]["dense"]
    assert dense["recall_at_10"] >= 0.9
    assert dense["legs"]["dense"]["paths"] == {"hnsw": 30}
    assert fig["latency"]["dense + 1% filter"]["recall_at_10"] >= 0.95
    assert fig["latency"]["hybrid"]["legs"]["bm25"]["paths"] == {"bm25": 30}
    assert fig["baseline"]["p50"] > 0 and 0 < fig["baseline"]["recall_at_10"] <= 1
    assert fig["health_floor_ms"]["p50"] > 0 and fig["ratio"] > 0
    assert fig["inprocess_dense_ms"]["p50"] > 0 and fig["ratio_inprocess"] > 0
    assert fig["rss"]["vm_hwm_mb"] >= fig["rss"]["ingest_peak_mb"] > 0

    report = done.stdout
    for figure in ("docs/s", "time until indexed", "recall@10", "VmHWM", "faiss", "HTTP floor", "in process",
                   *QUERY_TYPES):  # fmt: skip
        assert figure in report, figure


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ann_choice_benchmark_at_10k() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/ann_choice.py", "--docs", "10000", "--queries", "30", "--no-write"],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-5000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| faiss-cpu")]
    assert len(rows) == 8  # seven efSearch values and the filtered search
    recalls = [float(row.rstrip(" |").rsplit("|", 1)[1]) for row in rows]
    assert all(0 < r <= 1 for r in recalls) and max(recalls) >= 0.95
    assert "hnswlib" in done.stdout  # measured, or named as not installed
