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


def tiny_beir(folder: Path) -> Path:
    topics = ["vitamin d", "bone density", "insulin", "t cells", "sleep", "statins"]
    folder.mkdir()
    with (folder / "corpus.jsonl").open("w") as fh:
        for i in range(60):
            topic = topics[i % len(topics)]
            fh.write(
                json.dumps({"_id": str(i), "title": f"On {topic}", "text": f"Study {i} of {topic}."}) + "\n"
            )
    with (folder / "queries-train.jsonl").open("w") as fh, (folder / "qrels-train.tsv").open("w") as qrels:
        qrels.write("query-id\tcorpus-id\tscore\n")
        for i in range(30):
            fh.write(json.dumps({"_id": str(i), "text": f"{topics[i % len(topics)]} study {i}"}) + "\n")
            qrels.write(f"{i}\t{i}\t1\n")
    return folder


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_scifact_speed_benchmark_small(tmp_path: Path) -> None:
    scifact = SCIFACT if (SCIFACT / "qrels-train.tsv").is_file() else tiny_beir(tmp_path / "beir")
    out = tmp_path / "scifact_speed.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/scifact_speed.py", "--scifact", str(scifact), "--docs", "300",
         "--queries", "15", "--warmup", "2", "--cache-dir", str(tmp_path / "cache"), "--no-write",
         "--ignore-targets", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=580, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    figures = json.loads(out.read_text())
    assert figures["claims"] == 15 and figures["documents"] == (300 if scifact == SCIFACT else 60)
    for method in ("BM25", "dense", "RRF hybrid"):
        m = figures["methods"][method]
        assert 0.0 <= m["ndcg@10"] <= 1.0 and 0 < m["p50"] <= m["p95"]
