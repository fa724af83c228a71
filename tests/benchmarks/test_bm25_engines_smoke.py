"""The BM25 engine benchmark end to end, tiny: every installed engine builds, answers every kind of
query, takes single-document writes that are found at once, and scores SciFact.

Runs ``benchmarks/bm25_engines.py --docs 3000 --queries 20 --writes 20 --scifact-queries 50 --no-write
--json …`` as a subprocess. Which engine is faster is the full run's business, not this test's.
About 15 s on 2 cores.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
QUERIES, WRITES = 20, 20


def expected_engines() -> list[str]:
    names = ["fts5", "siftline"]
    if importlib.util.find_spec("tantivy"):
        names += ["tantivy", "tantivy-ram"]
    if importlib.util.find_spec("bm25s"):
        names.append("bm25s")
    return names


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_bm25_engines_benchmark_tiny(tmp_path: Path) -> None:
    out = tmp_path / "bm25.json"
    command = [sys.executable, "benchmarks/bm25_engines.py", "--docs", "3000", "--queries", str(QUERIES),
               "--writes", str(WRITES), "--no-write", "--json", str(out), "--tmp-dir", str(tmp_path)]  # fmt: skip
    command += ["--scifact-queries", "50"] if SCIFACT.is_dir() else ["--no-scifact"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=200, check=False)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-5000:]}"
    fig = json.loads(out.read_text())
    names = expected_engines()
    assert sorted(fig["synthetic"]["engines"]) == sorted(names), fig.get("skipped")

    for name in names:
        row = fig["synthetic"]["engines"][name]
        assert row["build"]["docs_per_s"] > 0, name
        for kind in ("short", "long", "filtered"):
            lat = row["latency_ms"][kind]
            assert 0 < lat["p50"] <= lat["p95"], (name, kind)
            assert 0 <= row["agreement"][kind]["identical"] <= row["agreement"][kind]["overlap"] <= 1
        if name != "bm25s":  # bm25s has no incremental add
            assert row["write_ms"]["p50"] > 0 and row["write_ms"]["visible"] == WRITES, name
    # the exact engine is the reference's own formula and analysis
    assert fig["synthetic"]["engines"]["siftline"]["agreement"]["short"]["identical"] == 1.0

    if SCIFACT.is_dir():
        scifact = fig["scifact"]["engines"]
        assert sorted(scifact) == sorted(names)
        for name, row in scifact.items():
            assert math.isfinite(row["ndcg_at_10"]) and 0 < row["ndcg_at_10"] < 1, name
            assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p95"], name
        assert "nDCG@10" in done.stdout
    for figure in ("build docs/s", "one write searchable", "overlap@10", "10 % filter"):
        assert figure in done.stdout, figure
