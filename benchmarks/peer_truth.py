"""The peers benchmark's data and yardsticks: the corpus in memory, the queries, exact dense top-k, a
reference BM25 and the quality measures (recall@10, tie-aware BM25 top-10 agreement).

- ``Corpus``: every chunk of ``benchmarks/synthetic.py`` for N documents, kept (vectors also as one
  contiguous array), plus the word ranks of the query targets.
- ``Queries``: warm-up, measured and tuning queries (in that order), each a fresh query vector and a
  BM25 query of 2-4 mid-frequency words of its target document, made as ``scale.py`` makes them.
- ``exact_topk``: exact inner-product top-k with numpy, in blocks (optionally among the documents
  passing a filter mask).
- ``ReferenceBM25``: exact BM25 over the same texts (lower-case ``\\w+`` tokens, k1 1.2, b 0.75,
  idf ln(1 + (N - df + 0.5) / (df + 0.5))), scored by summing precomputed per-posting impacts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from scale import progress
from synthetic import CHUNK, Chunk, Synthetic

TOKEN = re.compile(r"\w+")
K1, B = 1.2, 0.75
TIE_TOLERANCE = 1e-5  # relative: scores this close to the 10th are ties (float32 engines round)


@dataclass
class Corpus:
    chunks: list[Chunk]
    vectors: np.ndarray  # (n, DIM) float32, unit rows; each chunk's .vectors is a view into it
    meta: dict[str, np.ndarray]
    texts: list[str]
    target_words: dict[int, np.ndarray]

    def __len__(self) -> int:
        return len(self.vectors)

    def mask(self, name: str) -> np.ndarray:
        """The documents passing a filter: ``decile == 3`` (10 %) or ``bucket == 7`` (1 %)."""
        return {"10%": self.meta["decile"] == 3, "1%": self.meta["bucket"] == 7}[name]


def make_corpus(world: Synthetic, n: int, targets: set[int]) -> Corpus:
    chunks: list[Chunk] = []
    with progress(f"generate {n:,} documents", n) as advance:
        for index in range(world.chunks(n)):
            chunks.append(world.chunk(index, n))
            advance(len(chunks[-1]))
    vectors = np.concatenate([c.vectors for c in chunks])
    for c in chunks:
        c.vectors = vectors[c.start : c.start + len(c)]
    meta = {k: np.concatenate([c.meta[k] for c in chunks]) for k in chunks[0].meta}
    texts = [t for c in chunks for t in (c.texts or [])]
    words = {t: chunks[t // CHUNK].word_ranks[t % CHUNK] for t in targets}  # type: ignore[index]
    return Corpus(chunks, vectors, meta, texts, words)


@dataclass
class Queries:
    vectors: np.ndarray
    texts: list[str]
    warmup: range
    measured: range
    tuning: range


def make_queries(
    world: Synthetic, n: int, warmup: int, measured: int, tuning: int
) -> tuple[Queries, np.ndarray]:
    """The queries' vectors and target documents (the texts need the corpus: ``attach_texts``)."""
    total = warmup + measured + tuning
    targets = world.query_targets(total, n)
    vectors = world.query_vectors(targets, n)
    ranges = range(0, warmup), range(warmup, warmup + measured), range(warmup + measured, total)
    return Queries(vectors, [], *ranges), targets


def attach_texts(world: Synthetic, queries: Queries, targets: np.ndarray, corpus: Corpus, seed: int) -> None:
    rng = np.random.default_rng([seed, 6])
    queries.texts = [world.bm25_query(corpus.target_words[int(t)], rng) for t in targets]


def exact_topk(
    queries: np.ndarray, vectors: np.ndarray, k: int, mask: np.ndarray | None = None
) -> np.ndarray:
    """(q, k) document indexes of the exact inner-product top k, best first (among ``mask`` if given)."""
    columns = np.arange(len(vectors)) if mask is None else np.flatnonzero(mask)
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for lo in range(0, len(columns), 50_000):
        cols = columns[lo : lo + 50_000]
        scores = np.concatenate([best_s, queries @ vectors[cols].T], axis=1)
        index = np.concatenate([best_i, np.broadcast_to(cols, (len(queries), len(cols)))], axis=1)
        keep = np.argpartition(-scores, min(k, scores.shape[1]) - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(scores, keep, 1), np.take_along_axis(index, keep, 1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_i, order, 1)


class ReferenceBM25:
    """Exact BM25 over ``texts``; ``scores(query)`` is every document's score (0 where nothing matches)."""

    def __init__(self, texts: list[str]) -> None:
        vocab: dict[str, int] = {}
        terms: list[int] = []
        lengths = np.empty(len(texts), dtype=np.int64)
        with progress(f"reference BM25 over {len(texts):,} texts", len(texts)) as advance:
            for d, text in enumerate(texts):
                tokens = TOKEN.findall(text.lower())
                lengths[d] = len(tokens)
                terms.extend(vocab.setdefault(t, len(vocab)) for t in tokens)
                if d % 10_000 == 9_999 or d == len(texts) - 1:
                    advance(d % 10_000 + 1)
        n = len(texts)
        docs = np.repeat(np.arange(n, dtype=np.int64), lengths)
        keys, tf = np.unique(np.asarray(terms, dtype=np.int64) * n + docs, return_counts=True)
        term, doc = keys // n, keys % n
        df = np.bincount(term, minlength=len(vocab))
        idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
        norm = K1 * (1.0 - B + B * lengths / lengths.mean())
        self.vocab, self.n = vocab, n
        self.docs = doc
        self.impacts = idf[term] * tf * (K1 + 1.0) / (tf + norm[doc])
        self.offsets = np.concatenate([[0], np.cumsum(df)])

    def scores(self, query: str) -> np.ndarray:
        spans = [
            (self.offsets[t], self.offsets[t + 1])
            for t in (self.vocab.get(tok) for tok in TOKEN.findall(query.lower()))
            if t is not None
        ]
        if not spans:
            return np.zeros(self.n)
        docs = np.concatenate([self.docs[a:b] for a, b in spans])
        impacts = np.concatenate([self.impacts[a:b] for a, b in spans])
        return np.bincount(docs, weights=impacts, minlength=self.n)

    def top(self, query: str, k: int) -> tuple[list[int], np.ndarray]:
        scores = self.scores(query)
        matched = np.flatnonzero(scores > 0)
        best = matched[np.argsort(-scores[matched], kind="stable")[:k]]
        return best.tolist(), scores


# -- measures ------------------------------------------------------------------------------------


def recall(found: list[int], exact: list[int]) -> float:
    return len(set(found[: len(exact)]) & set(exact)) / len(exact) if exact else 1.0


@dataclass
class Agreement:
    same: bool  # the found top 10 is a valid top 10 of the reference (ties at the 10th place allowed)
    overlap: float  # share of the found top 10 that belongs to the reference top 10 (with its ties)


def bm25_agreement(found: list[int], scores: np.ndarray, k: int = 10) -> Agreement:
    matched = int((scores > 0).sum())
    want = min(k, matched)
    if want == 0:
        return Agreement(not found, 1.0)
    kth = np.partition(scores, len(scores) - want)[len(scores) - want]
    valid = [d for d in dict.fromkeys(found[:k]) if scores[d] >= kth * (1 - TIE_TOLERANCE) and scores[d] > 0]
    return Agreement(len(valid) == want == len(found[:k]), min(1.0, len(valid) / want))


def rrf(*rankings: list[int], k: int = 60, top: int = 10) -> list[int]:
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            fused[doc] = fused.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(fused, key=lambda d: (-fused[d], d))[:top]
