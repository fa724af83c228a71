"""A deterministic synthetic corpus for the scale benchmark: 384-d vectors, text and metadata.

Everything is a function of the seed, and the corpus is made in chunks of ``CHUNK`` documents, each
from its own random streams, so a chunk can be (re)made alone and 1M documents never need giant
temporaries.

- Vectors: a 64-d latent drawn from a mixture of 1,000 cluster centres (skewed weights, per-cluster
  spread), projected by a fixed random 64x384 basis, plus isotropic noise carrying ``NOISE_SHARE``
  of the variance; float32, unit-normalised. Not i.i.d. Gaussian, and not so easy that HNSW is
  trivially perfect. Query vectors are fresh draws from the same distribution (never documents).
- Text: 15-40 words from a vocabulary of 50,000 pronounceable made-up words with Zipf frequencies
  (the frequent words are the short ones), a share of them from the document's cluster's topic words,
  so BM25 and dense search agree somewhat. A BM25 query is 2-4 of one document's mid-frequency words.
- Metadata, assigned at random: ``category`` (10 values), ``bucket`` (0-99: ``bucket == 7`` passes 1 %),
  ``decile`` (0-9: ``decile == 3`` passes 10 %), ``tenant`` (1,000 values), ``year`` (1990-2024).

    from synthetic import Synthetic
    world = Synthetic(seed=7)
    chunk = world.chunk(0, 10_000)          # the first CHUNK documents of a 10,000-document corpus
    chunk.documents(0, 5000)                # request-ready dicts (vectors as numpy rows, for orjson)
"""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

DIM = 384
LATENT = 64
CLUSTERS = 1000
VOCAB = 50_000
CHUNK = 10_000
NOISE_SHARE = 0.35  # of each document vector's variance, before normalising
TOPIC_WORDS = 150  # per cluster
TOPIC_SHARE = 0.35  # of a document's words drawn from its cluster's topic words
WORDS = (15, 40)  # per document, inclusive
MID_RANKS = (200, 20_000)  # a "mid-frequency" word's rank in the vocabulary
DENSE_FEATURE = "all_minilm_l6_v2"
COLLECTION = {
    "collection_name": "synthetic",
    "feature_extractor": {"feature_extractor_name": "text_extractor", "input_mappings": {"text": "text"}},
    "payload_indexes": [
        {"field_name": "bucket", "type": "integer"},
        {"field_name": "decile", "type": "integer"},
        {"field_name": "category", "type": "keyword"},
    ],
}
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aiou"  # words end in a vowel, never "e"/"y": Porter stemming leaves almost all alone


def _vocabulary(rng: np.random.Generator) -> list[str]:
    """50,000 distinct CV-syllable words, the short (two-syllable) ones at the frequent ranks."""
    syllables = [c + v for c, v in itertools.product(_CONSONANTS, _VOWELS)]
    two = ["".join(p) for p in itertools.product(syllables, repeat=2)]
    three = ["".join(p) for p in itertools.product(syllables, repeat=3)]
    rng.shuffle(two)
    picked = rng.choice(len(three), size=VOCAB - len(two), replace=False)
    return two + [three[i] for i in sorted(picked)]


@dataclass
class Chunk:
    """Documents ``start … start + len(ids) - 1`` of the corpus; ``texts`` is None when not asked for."""

    start: int
    ids: list[str]
    vectors: np.ndarray  # (m, DIM) float32, unit rows
    clusters: np.ndarray
    meta: dict[str, np.ndarray]  # category, bucket, decile, tenant, year
    texts: list[str] | None = None
    word_ranks: list[np.ndarray] | None = None  # each document's words as vocabulary ranks

    def __len__(self) -> int:
        return len(self.ids)

    def documents(
        self, lo: int = 0, hi: int | None = None, vector_format: str = "b64"
    ) -> list[dict[str, Any]]:
        """Rows ``lo:hi`` as documents for POST …/documents/batch. ``vector_format`` ``b64``: each vector a
        base64 string of little-endian float32 (the bulk-load fast path); ``json``: a numpy row
        (serialise with orjson's numpy option: a list of numbers)."""
        assert self.texts is not None, "made with text=False"
        hi = len(self) if hi is None else hi
        if vector_format == "b64":
            raw = np.ascontiguousarray(self.vectors[lo:hi], dtype="<f4")
            vectors: list[Any] = [base64.b64encode(row.tobytes()).decode() for row in raw]
        else:
            vectors = [self.vectors[i] for i in range(lo, hi)]
        cat, bucket, decile, tenant, year = (
            self.meta[k][lo:hi].tolist() for k in ("category", "bucket", "decile", "tenant", "year")
        )
        return [
            {
                "document_id": self.ids[i],
                "text": self.texts[i],
                "category": f"cat-{cat[j]}",
                "bucket": bucket[j],
                "decile": decile[j],
                "tenant": f"tenant-{tenant[j]:04d}",
                "year": year[j],
                "vectors": {DENSE_FEATURE: vectors[j]},
            }
            for j, i in enumerate(range(lo, hi))
        ]


class Synthetic:
    """The corpus "world" of one seed: cluster centres, projection, vocabulary and topic words."""

    def __init__(self, seed: int = 7) -> None:
        self.seed = seed
        rng = np.random.default_rng([seed, 0])
        self.centres = rng.normal(size=(CLUSTERS, LATENT)).astype(np.float32)
        self.spread = rng.uniform(0.8, 1.4, size=CLUSTERS).astype(np.float32)  # within-cluster std
        weights = rng.gamma(2.0, size=CLUSTERS)
        self.weights = weights / weights.sum()
        self.basis = (rng.normal(size=(LATENT, DIM)) / np.sqrt(LATENT)).astype(np.float32)
        signal_var = 1.0 + float(np.mean(self.spread**2))  # per output dimension, on average
        self.noise_std = np.float32(np.sqrt(signal_var * NOISE_SHARE / (1.0 - NOISE_SHARE)))
        self.words = _vocabulary(rng)
        ranks = np.arange(1, VOCAB + 1, dtype=np.float64)
        zipf = 1.0 / (ranks + 2.7) ** 1.07
        self.word_cdf = np.cumsum(zipf / zipf.sum())
        # topic words from the mid and rare ranks, a few hundred ranks down the list
        self.topics = rng.integers(300, VOCAB, size=(CLUSTERS, TOPIC_WORDS))

    # -- vectors ----------------------------------------------------------------------------

    def _vectors(self, rng: np.random.Generator, clusters: np.ndarray) -> np.ndarray:
        m = len(clusters)
        latent = self.centres[clusters] + self.spread[clusters, None] * rng.standard_normal(
            (m, LATENT), dtype=np.float32
        )
        vectors = latent @ self.basis
        vectors += self.noise_std * rng.standard_normal((m, DIM), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors

    def chunk_clusters(self, index: int, n_docs: int) -> np.ndarray:
        """The clusters of chunk ``index``'s documents (cheap: the first draw of its vector stream)."""
        m = min(CHUNK, n_docs - index * CHUNK)
        return np.random.default_rng([self.seed, 1, index]).choice(CLUSTERS, size=m, p=self.weights)

    def chunks(self, n_docs: int) -> int:
        return -(-n_docs // CHUNK)

    def chunk(self, index: int, n_docs: int, text: bool = True) -> Chunk:
        """Chunk ``index`` of an ``n_docs`` corpus (the same documents whatever else is made); without
        ``text`` only the vectors and metadata are made (much cheaper)."""
        start = index * CHUNK
        m = min(CHUNK, n_docs - start)
        if m <= 0:
            raise IndexError(f"chunk {index} is past {n_docs} documents")
        rng = np.random.default_rng([self.seed, 1, index])
        clusters = rng.choice(CLUSTERS, size=m, p=self.weights)
        meta = np.random.default_rng([self.seed, 3, index])
        chunk = Chunk(
            start=start,
            ids=[f"doc-{k:07d}" for k in range(start, start + m)],
            vectors=self._vectors(rng, clusters),
            clusters=clusters,
            meta={
                "category": meta.integers(0, 10, size=m),
                "bucket": meta.integers(0, 100, size=m),
                "decile": meta.integers(0, 10, size=m),
                "tenant": meta.integers(0, 1000, size=m),
                "year": meta.integers(1990, 2025, size=m),
            },
        )
        if text:
            chunk.word_ranks = self._word_ranks(np.random.default_rng([self.seed, 2, index]), clusters)
            words = self.words
            chunk.texts = [" ".join([words[r] for r in doc.tolist()]) for doc in chunk.word_ranks]
        return chunk

    # -- text -------------------------------------------------------------------------------

    def _word_ranks(self, rng: np.random.Generator, clusters: np.ndarray) -> list[np.ndarray]:
        m = len(clusters)
        lengths = rng.integers(WORDS[0], WORDS[1] + 1, size=m)
        total = int(lengths.sum())
        owner = np.repeat(clusters, lengths)
        general = np.searchsorted(self.word_cdf, rng.random(total), side="right").clip(0, VOCAB - 1)
        topical = self.topics[owner, rng.integers(0, TOPIC_WORDS, size=total)]
        ranks = np.where(rng.random(total) < TOPIC_SHARE, topical, general)
        return np.split(ranks, np.cumsum(lengths)[:-1])

    def bm25_query(self, word_ranks: np.ndarray, rng: np.random.Generator) -> str:
        """2-4 distinct mid-frequency words of one document (any of its words if it has too few)."""
        distinct = np.unique(word_ranks)
        mid = distinct[(distinct >= MID_RANKS[0]) & (distinct < MID_RANKS[1])]
        pool = mid if len(mid) >= 2 else distinct
        k = min(len(pool), int(rng.integers(2, 5)))
        return " ".join(self.words[r] for r in rng.choice(pool, size=k, replace=False).tolist())

    # -- queries ----------------------------------------------------------------------------

    def query_targets(self, n_queries: int, n_docs: int) -> np.ndarray:
        """The corpus document each query is about (its cluster gives the query vector's cluster, its
        text the BM25 query's words)."""
        return np.random.default_rng([self.seed, 4]).choice(
            n_docs, size=n_queries, replace=n_queries > n_docs
        )

    def query_vectors(self, targets: np.ndarray, n_docs: int) -> np.ndarray:
        """Fresh vectors from the clusters of the target documents (never copies of documents)."""
        clusters = np.empty(len(targets), dtype=np.int64)
        for index in np.unique(targets // CHUNK).tolist():
            of_chunk = self.chunk_clusters(index, n_docs)
            picked = targets // CHUNK == index
            clusters[picked] = of_chunk[targets[picked] - index * CHUNK]
        return self._vectors(np.random.default_rng([self.seed, 5]), clusters)
