"""The SciFact speed benchmark end to end, small: it loads, runs the three retrievers over HTTP and
reports latency and nDCG@10 for each (the targets are the full run's business, not this test's).

Runs ``benchmarks/scifact_speed.py --docs 300 --queries 15 --no-write --ignore-targets --json …`` as a
subprocess against a real server, with SciFact from ``../shared/data/scifact`` when present, else a
tiny BEIR folder written here; corpus embeddings are cached in the test's temporary folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_scifact_speed_benchmark_small(tmp_path: Path, beir_folder: Path) -> None:
    scifact = beir_folder
    out = tmp_path / "scifact_speed.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/scifact_speed.py", "--scifact", str(scifact), "--docs", "300",
         "--queries", "15", "--warmup", "2", "--cache-dir", str(tmp_path / "cache"), "--no-write",
         "--ignore-targets", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=580, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    figures = json.loads(out.read_text())
    assert figures["claims"] == 15 and figures["documents"] == (300 if scifact == SCIFACT else 120)
    for method in ("BM25", "dense", "RRF hybrid"):
        m = figures["methods"][method]
        assert 0.0 <= m["ndcg@10"] <= 1.0 and 0 < m["p50"] <= m["p95"]
