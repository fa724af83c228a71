"""Bulk loading of BEIR-style folders (``corpus.jsonl``: ``_id``, ``title``, ``text``)."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from siftline.errors import BadRequestError
from siftline.service import collections, namespaces
from siftline.service.container import Services


def _corpus(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BadRequestError(f"{path}:{line_no} is not valid JSON: {exc.msg}") from exc
            doc = {k: v for k, v in row.items() if k != "_id"}
            doc["document_id"] = str(row["_id"])
            yield doc


def count_corpus(directory: Path) -> int:
    """Documents in the folder's corpus.jsonl (for a progress bar's total)."""
    corpus = directory / "corpus.jsonl"
    if not corpus.is_file():
        raise BadRequestError(
            f"{corpus} not found: a BEIR folder holds corpus.jsonl with _id, title and text."
        )
    with corpus.open(encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def load_beir(
    svc: Services,
    directory: Path,
    collection_name: str,
    namespace: str,
    batch_size: int,
    on_progress: Callable[[int], None] = lambda n: None,
) -> dict[str, Any]:
    """Upsert every document of corpus.jsonl in batches; ``on_progress(n)`` after each batch of n."""
    count_corpus(directory)
    ns = namespaces.ensure_namespace(svc.storage, namespace)
    col = svc.storage.get_collection(ns.namespace_id, collection_name)
    if col is None:
        col = collections.create(
            svc.storage,
            ns,
            collection_name=collection_name,
            description=f"Loaded from {directory.name}",
            feature_extractor={
                "feature_extractor_name": "text_extractor",
                "version": "v1",
                "input_mappings": {"text": ["title", "text"]},
            },
        )
    started = time.perf_counter()
    loaded = 0
    batch: list[dict[str, Any]] = []
    for doc in _corpus(directory / "corpus.jsonl"):
        batch.append(doc)
        if len(batch) >= batch_size:
            loaded += len(svc.documents.create_batch(col, {"documents": batch}, replace=True))
            on_progress(len(batch))
            batch = []
    if batch:
        loaded += len(svc.documents.create_batch(col, {"documents": batch}, replace=True))
        on_progress(len(batch))
    seconds = time.perf_counter() - started
    return {
        "collection_id": col.collection_id,
        "namespace": ns.namespace_name,
        "documents": loaded,
        "seconds": round(seconds, 2),
        "docs_per_second": round(loaded / seconds, 1) if seconds else None,
    }


def judged_queries(directory: Path, split: str, input_key: str = "query") -> list[dict[str, Any]]:
    """A BEIR split as judged queries: ``queries-<split>.jsonl`` (or ``queries.jsonl``) and
    ``qrels-<split>.tsv`` (query id, corpus id, grade; a header line). Queries without a judgement
    are left out; each query's text becomes ``{input_key: text}``."""
    names = [f"queries-{split}.jsonl", "queries.jsonl"]
    path = next((directory / n for n in names if (directory / n).is_file()), None)
    qrels_path = directory / f"qrels-{split}.tsv"
    if path is None or not qrels_path.is_file():
        raise BadRequestError(f"{directory} needs {names[0]} (or {names[1]}) and qrels-{split}.tsv")
    grades: dict[str, dict[str, int]] = {}
    with qrels_path.open(encoding="utf-8", newline="") as fh:
        rows = csv.reader(fh, delimiter="\t")
        next(rows, None)
        for row in rows:
            if len(row) >= 3:
                grades.setdefault(row[0], {})[row[1]] = int(row[2])
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                qid = str(row["_id"])
                if qid in grades:
                    judged = grades[qid]
                    out.append({
                        "query_id": qid,
                        "query_input": {input_key: row["text"]},
                        "relevant_documents": [d for d, g in judged.items() if g > 0],
                        "relevance_scores": judged,
                    })  # fmt: skip
    return out
