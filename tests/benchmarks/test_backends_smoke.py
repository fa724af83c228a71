"""The backend congruence benchmark end to end, small: SQLite and PostgreSQL servers give the same nDCG@10.

Runs ``benchmarks/backends.py --docs 300 --queries 30 --no-write --json …`` as a subprocess: a real
SQLite server and a real PostgreSQL server (over a local PostgreSQL started by the script) load the same
abstracts with the same supplied vectors, and the three retrievers of ``benchmarks/quality.py`` run every
claim on both. SciFact from ``../shared/data/scifact`` when present, else a tiny BEIR folder written
here; corpus embeddings are cached in the test's temporary folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("BM25", "dense", "RRF hybrid")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_backends_benchmark_small(tmp_path: Path, beir_folder: Path) -> None:
    out = tmp_path / "backends.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/backends.py", "--scifact", str(beir_folder), "--docs", "300",
         "--queries", "30", "--cache-dir", str(tmp_path / "cache"), "--no-write", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=580, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    fig = json.loads(out.read_text())
    assert fig["claims"] == 30
    assert fig["counts"] == {"sqlite": fig["documents"], "postgres": fig["documents"]}
    assert set(fig["methods"]) == set(METHODS)
    for method in METHODS:
        m = fig["methods"][method]
        for backend in ("sqlite", "postgres"):
            assert 0.0 < m[backend]["ndcg@10"] <= 1.0, (method, backend)
            assert 0 < m[backend]["p50"] <= m[backend]["p95"], (method, backend)
        assert abs(m["postgres"]["ndcg@10"] - m["sqlite"]["ndcg@10"]) <= 0.002, (method, m)
        assert m["pass"] is True
    assert "nDCG@10 SQLite" in done.stdout and "nDCG@10 PostgreSQL" in done.stdout
