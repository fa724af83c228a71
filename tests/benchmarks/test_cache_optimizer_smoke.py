"""The cache and optimizer benchmark end to end, small: it completes, hits are observed, and the
optimizer changes nothing but the time.

Runs ``benchmarks/cache_optimizer.py --docs 3000 --queries 20 --claims 20 --scifact-docs 300
--hnsw-threshold 2000 --no-write --ignore-targets --json …`` as a subprocess against a real server
(the speed targets are the full run's business, not this test's). SciFact comes from
``../shared/data/scifact`` when present, else from the tiny BEIR folder of ``conftest.py``. About a minute on
2 cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLAIMS, QUERIES = 20, 20


@pytest.mark.slow
@pytest.mark.timeout(660)
def test_cache_optimizer_benchmark_small(tmp_path: Path, beir_folder: Path) -> None:
    scifact = beir_folder
    out = tmp_path / "cache_optimizer.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/cache_optimizer.py", "--docs", "3000", "--queries", str(QUERIES),
         "--claims", str(CLAIMS), "--scifact", str(scifact), "--scifact-docs", "300",
         "--hnsw-threshold", "2000", "--no-write", "--ignore-targets", "--json", str(out),
         "--tmp-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-5000:]}"
    fig = json.loads(out.read_text())
    assert fig["failures"] == []

    cache = fig["cache"]
    assert cache["seen"]["first MISS"] == CLAIMS
    assert cache["seen"]["second HIT"] == cache["seen"]["hits"] == CLAIMS
    assert cache["seen"]["hits equal to their miss"] == CLAIMS
    assert cache["hit_share"] == 1.0
    assert min(cache["hit_ms"]["p50"], cache["miss_ms"]["p50"], cache["ratio"]) > 0

    opt = fig["optimizer"]
    assert opt["identical"] == QUERIES
    assert opt["seen"]["returned 10"] == QUERIES
    assert opt["seen"]["on optimization_applied true"] == QUERIES
    assert opt["seen"]["off optimization_applied false"] == QUERIES
    assert any(key.startswith("rules ") for key in opt["seen"])
    assert min(opt["on_ms"]["p50"], opt["off_ms"]["p50"], opt["speedup"]) > 0

    for figure in ("hit p50 / miss p50", "speedup off p50 / on p50", "rules_applied", "search path"):
        assert figure in done.stdout, figure
