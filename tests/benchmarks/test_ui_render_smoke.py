"""The inspector's render benchmark end to end, small: it builds its 500-document execution and renders
every page (``benchmarks/ui_render.py --runs 2 --no-write``; the 200 ms target is the full run's business)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ui_render_benchmark_small() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/ui_render.py", "--runs", "2", "--no-write"],
        cwd=ROOT, capture_output=True, text=True, timeout=220, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-5000:]}"
    assert "| execution page, 500 documents with lineage |" in done.stdout
