"""Shared by the benchmark smoke tests: SciFact when it is beside the repository, else a tiny BEIR folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "data" / "scifact"
TINY_CLAIMS = 40


def tiny_beir(folder: Path) -> Path:
    """A BEIR folder of 120 short abstracts and 40 judged claims (only when SciFact is absent)."""
    topics = ["vitamin d", "bone density", "insulin", "t cells", "sleep", "statins"]
    folder.mkdir()
    with (folder / "corpus.jsonl").open("w") as fh:
        for i in range(120):
            topic = topics[i % len(topics)]
            text = f"Study {i} of {topic} in {20 + i} adults: {topic} changes outcome marker{i}."
            fh.write(json.dumps({"_id": str(i), "title": f"On {topic}", "text": text}) + "\n")
    with (folder / "queries-train.jsonl").open("w") as fh:
        for i in range(TINY_CLAIMS):
            claim = f"{topics[i % len(topics)]} changes outcome marker{i} in adults"
            fh.write(json.dumps({"_id": f"q{i}", "text": claim}) + "\n")
    with (folder / "qrels-train.tsv").open("w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        fh.writelines(f"q{i}\t{i}\t1\n" for i in range(TINY_CLAIMS))
    return folder


@pytest.fixture
def beir_folder(tmp_path: Path) -> Path:
    """SciFact (corpus, train claims and judgements) if present, else :func:`tiny_beir`."""
    return SCIFACT if (SCIFACT / "qrels-train.tsv").is_file() else tiny_beir(tmp_path / "beir")
