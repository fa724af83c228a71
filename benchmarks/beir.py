"""BEIR-format data (corpus.jsonl, queries-*.jsonl, qrels-*.tsv) and nDCG@k as pytrec_eval defines it.

A helper of ``benchmarks/quality.py``; it has no command line of its own.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Doc:
    doc_id: str
    title: str
    text: str

    @property
    def joined(self) -> str:
        """Title and text as one string, as the text extractor joins ``["title", "text"]``."""
        return " ".join(part for part in (self.title, self.text) if part.strip())


def read_jsonl(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_corpus(folder: Path) -> list[Doc]:
    return [
        Doc(str(r["_id"]), r.get("title") or "", r.get("text") or "")
        for r in read_jsonl(folder / "corpus.jsonl")
    ]


def load_queries(folder: Path, split: str) -> list[tuple[str, str]]:
    """``(query id, text)`` in file order."""
    return [(str(r["_id"]), r["text"]) for r in read_jsonl(folder / f"queries-{split}.jsonl")]


def load_qrels(folder: Path, split: str) -> dict[str, dict[str, int]]:
    """query id → {doc id: relevance grade}, from a tab-separated file with a header line."""
    qrels: dict[str, dict[str, int]] = {}
    with (folder / f"qrels-{split}.tsv").open(encoding="utf-8", newline="") as fh:
        rows = csv.reader(fh, delimiter="\t")
        next(rows, None)  # query-id corpus-id score
        for row in rows:
            if len(row) >= 3:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return qrels


def ndcg_at_k(ranked: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k of one ranked list (best first), with linear gains as trec_eval's ``ndcg_cut``.

    DCG = Σ rel_i / log2(i + 1) over ranks i = 1..k; the ideal DCG sorts the judged grades; a
    document listed twice counts once. Queries whose judgements hold no positive grade score 0.
    """
    seen: set[str] = set()
    dcg = 0.0
    rank = 0
    for doc_id in ranked:
        if doc_id in seen:
            continue
        seen.add(doc_id)
        rank += 1
        if rank > k:
            break
        dcg += judged.get(doc_id, 0) / math.log2(rank + 1)
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def mean_ndcg(
    runs: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    query_ids: Sequence[str],
    k: int = 10,
) -> float:
    """Mean nDCG@k over ``query_ids`` that have judgements; a query without a run scores 0."""
    judged = [q for q in query_ids if q in qrels]
    return sum(ndcg_at_k(runs.get(q, ()), qrels[q], k) for q in judged) / len(judged) if judged else 0.0
