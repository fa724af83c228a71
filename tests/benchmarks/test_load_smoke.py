"""The load benchmark end to end, small: it completes, nothing errs and every acknowledged write is there.

Runs ``benchmarks/load.py --docs 2000 --clients 5 --seconds 3 --no-write --json …`` as a subprocess
against a real server and checks the figures are sane (the issue's speed targets are the full run's
business, not this test's). About 15 s on 2 cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_load_benchmark_small(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/load.py", "--docs", "2000", "--clients", "5", "--seconds", "3",
         "--no-write", "--json", str(out), "--tmp-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=150, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-5000:]}"
    fig = json.loads(out.read_text())
    assert fig["failures"] == []

    load = fig["load"]
    assert load["requests"] > 0 and load["throughput_rps"] > 0
    assert load["errors"] == 0, load["errors_by_op"]
    assert 0 < load["latency_ms"]["p50"] <= load["latency_ms"]["p95"] <= load["latency_ms"]["p99"]
    assert load["kinds"]["search"]["requests"] > 0
    assert load["search_returned"]["min"] == 10  # every filter passes thousands: a full top 10
    check = fig["verify"]
    assert check["missing"] == 0
    assert (
        check["checked"] == load["ops"]["create"]["requests"] > 0
    )  # every create acknowledged and read back
    assert fig["timeline"] and fig["timeline"][-1]["requests"] == load["requests"]

    assert "acknowledged writes missing: 0" in done.stdout
    for figure in ("throughput", "p99", "search (filtered dense top-10)", "read (GET execution record)"):
        assert figure in done.stdout, figure
