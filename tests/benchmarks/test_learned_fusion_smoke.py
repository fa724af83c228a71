"""The learned-fusion harness end to end, tiny: it completes, learns through the interactions API and
reports every figure (the quality checks are the full run's business, not this test's).

Runs ``benchmarks/learned_fusion.py --sessions 30 --seeds 1 --claims-limit 40 --scifact-docs 300
--no-write --ignore-targets --json …`` as a subprocess against a real server. SciFact comes from
``../shared/data/scifact`` when present, else from a tiny BEIR folder written here. About a minute on
2 cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SESSIONS, CLAIMS = 30, 40


@pytest.mark.slow
@pytest.mark.timeout(660)
def test_learned_fusion_benchmark_small(tmp_path: Path, beir_folder: Path) -> None:
    scifact = beir_folder
    out = tmp_path / "learned_fusion.json"
    benchmarks_md = ROOT / "docs" / "BENCHMARKS.md"
    before = benchmarks_md.read_text()
    done = subprocess.run(
        [sys.executable, "benchmarks/learned_fusion.py", "--sessions", str(SESSIONS), "--seeds", "1",
         "--claims-limit", str(CLAIMS), "--scifact", str(scifact), "--scifact-docs", "300",
         "--no-write", "--ignore-targets", "--json", str(out), "--tmp-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-5000:]}"
    assert benchmarks_md.read_text() == before  # --no-write
    fig = json.loads(out.read_text())
    assert fig["failures"] == []
    assert fig["claims"] == CLAIMS
    (seed,) = fig["seeds"]
    assert seed["learning_claims"] + seed["evaluation_claims"] == CLAIMS

    for key in ("rrf2", "weighted", "weighted_rrf", "rrf3", "learned2", "learned3"):
        assert 0.0 <= seed["eval"][key] <= 1.0, key
    assert seed["weighted_w"] in [round(0.1 * i, 1) for i in range(1, 10)]
    assert seed["consistency"] < 1e-9  # the API's evaluation-half runs = the per-query means
    assert len(fig["grid"]) == 1 + 9 + 9 + 1  # RRF, weighted and weighted RRF at 9 weights, RRF of 3

    curve = seed["curve"]
    sessions = [p["sessions"] for p in curve]
    assert sessions[0] == 0 and sessions[-1] == SESSIONS and sessions == sorted(set(sessions))
    assert len(sessions) >= 4
    assert curve[0]["interactions"] == {"learned2": 0, "learned3": 0}
    for key in ("learned2", "learned3"):
        learner = seed["learners"][key]
        assert learner["interactions"] == curve[-1]["interactions"][key] == learner["counted"] > 0
        assert sum(learner["context_levels"].values()) == SESSIONS
        assert any(level.startswith("global") for level in learner["context_levels"])  # it learned
        assert 0.0 <= learner["seen"] <= 1.0
        assert 0.0 <= seed["seen_fixed"][f"rrf{2 if key == 'learned2' else 3}"] <= 1.0
        legs = learner["posteriors"]
        assert len(legs) == (2 if key == "learned2" else 3)
        assert all(leg["interactions"] > 0 and 0 < leg["mean"] < 1 for leg in legs.values())

    for figure in (
        "Learning curve",
        "nDCG@10 users saw",
        "check (3)",
        "check (4a)",
        "check (4b)",
        "per seed",
    ):
        assert figure in done.stdout, figure
