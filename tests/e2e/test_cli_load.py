"""`siftline load` of a BEIR folder: progress, every document stored, embedded and indexed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from siftline.config import Settings
from siftline.service.container import Services
from siftline.testing.server import siftline

SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "data" / "scifact" / "corpus.jsonl"


def _write_corpus(folder: Path, rows: list[dict[str, str]]) -> Path:
    folder.mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder


def _sample_rows(n: int) -> list[dict[str, str]]:
    if SCIFACT.is_file():
        with SCIFACT.open() as fh:
            return [json.loads(next(fh)) for _ in range(n)]
    return [
        {"_id": str(i), "title": f"Paper {i}", "text": f"Findings about protein {i} in cells."}
        for i in range(n)
    ]


@pytest.mark.slow
def test_load_creates_the_collection_and_stores_every_document(tmp_path: Path) -> None:
    rows = _sample_rows(40)
    folder = _write_corpus(tmp_path / "beir", rows)
    data_dir = tmp_path / "data"
    done = siftline(
        "load", str(folder), "--collection", "scifact", "--data-dir", str(data_dir), "--batch-size", "16"
    )
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert stats["documents"] == 40 and stats["docs_per_second"] > 0
    assert "40/40" in done.stderr  # the progress bar's final count

    again = siftline("load", str(folder), "--collection", "scifact", "--data-dir", str(data_dir))
    assert again.returncode == 0, again.stderr  # loading twice upserts, never duplicates

    svc = Services.open(Settings(data_dir=data_dir))
    try:
        ns = svc.storage.get_namespace("default")
        assert ns is not None
        col = svc.storage.get_collection(ns.namespace_id, "scifact")
        assert col is not None and svc.storage.count_documents(col) == 40
        first = svc.storage.get_documents(col, [rows[0]["_id"]], with_vectors=True)[0]
        assert first.payload["title"] == rows[0]["title"] and first.payload["text"] == rows[0]["text"]
        assert first.vectors is not None and len(first.vectors["all_minilm_l6_v2"]) == 384
        # the title + text embedding finds the document from its own title
        dense = col.feature("all_minilm_l6_v2")
        bm25 = col.feature("bm25")
        assert dense and bm25
        query = svc.embedder.embed_one(rows[0]["title"])
        assert svc.storage.vector_search(col, dense, query, 3)[0][0] == rows[0]["_id"]
        assert rows[0]["_id"] in [d for d, _ in svc.storage.text_search(col, bm25, rows[0]["title"], 3)]
        assert np.isfinite(query).all()
    finally:
        svc.close()


def test_load_of_a_folder_without_corpus_fails_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    done = siftline("load", str(tmp_path / "empty"), "--collection", "x", "--data-dir", str(tmp_path / "d"))
    assert done.returncode == 1
    assert "corpus.jsonl" in done.stderr
