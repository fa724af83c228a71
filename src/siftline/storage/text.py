"""BM25 text analysis and scoring, shared by every storage backend so their scores agree.

Analysis: lower-case, accents folded (NFKD, combining marks dropped), words are runs of letters and
digits (``_`` and punctuation separate words, as SQLite's ``unicode61`` did), each word Porter-stemmed
(PyStemmer's C implementation of Martin Porter's algorithm, FTS5's ``porter`` tokenizer's algorithm).
A query is the set of its distinct terms (the OR of its words); a document's terms keep their counts.

Scoring is Okapi BM25 with Lucene's non-negative idf:

    idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))
    score(d, q) = Σ_{t ∈ q} idf(t) · tf(t, d) · (k1 + 1) / (tf(t, d) + k1 · (1 - b + b · |d| / avgdl))

with k1 = 1.2, b = 0.75, N the number of documents carrying the feature's text, |d| a document's
term count and avgdl their mean. Ranking is by score, ties by document id (ascending).
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import Stemmer

K1 = 1.2
B = 0.75

_ASCII_WORD = re.compile(r"[a-z0-9]+")
_WORD = re.compile(r"[^\W_]+")
_SEP = "\x01"  # joins a batch's texts: not a word character, so it only ever matches as itself
_ASCII_BATCH = re.compile(r"[a-z0-9]+|\x01")
_BATCH = re.compile(r"[^\W_]+|\x01")
_STEM_CACHE_MAX = 500_000
_stems: dict[str, str] = {}
_local = threading.local()


def _stemmer() -> Stemmer.Stemmer:
    stemmer = getattr(_local, "stemmer", None)  # a Stemmer is not safe to share between threads
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("porter", 0)
    return stemmer


def words(text: str) -> list[str]:
    """The lower-cased, accent-folded words of ``text``, in order (before stemming)."""
    text = text.lower()
    if text.isascii():
        return _ASCII_WORD.findall(text)
    folded = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return _WORD.findall(folded)


def stems(unique_words: Sequence[str]) -> list[str]:
    """Each word's Porter stem (cached: word frequencies are Zipfian, so nearly every word is a hit)."""
    out: list[str] = []
    missing = [w for w in unique_words if w not in _stems]
    if missing:
        if len(_stems) > _STEM_CACHE_MAX:
            _stems.clear()
        for word, stem in zip(missing, _stemmer().stemWords(missing), strict=True):
            _stems[word] = stem
    get = _stems.get
    for w in unique_words:
        stem = get(w)
        out.append(stem if stem is not None else _stemmer().stemWord(w))
    return out


def query_terms(text: str) -> list[str]:
    """The distinct terms of a query, in first-seen order."""
    return list(dict.fromkeys(stems(list(dict.fromkeys(words(text))))))


@dataclass
class Analyzed:
    """A batch of documents' terms: document ``i`` has ``lengths[i]`` terms in all, and the distinct
    terms ``terms[codes[ptr[i]:ptr[i+1]]]`` with their counts ``tfs[ptr[i]:ptr[i+1]]``."""

    terms: list[str]  # distinct over the batch
    codes: np.ndarray  # int64 indexes into ``terms``
    tfs: np.ndarray  # int32
    ptr: np.ndarray  # int64, len = documents + 1
    lengths: np.ndarray  # int32 terms per document (with repeats)

    def __len__(self) -> int:
        return len(self.lengths)


def _batch_words(texts: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Every word of the batch as (distinct words, each word's code, each word's text), in order: one
    regex pass over the texts joined by a separator that no text holds, else text by text."""
    joined = _SEP.join(texts).lower()
    if len(texts) > 1 and joined.count(_SEP) == len(texts) - 1:
        if not joined.isascii():
            joined = "".join(c for c in unicodedata.normalize("NFKD", joined) if not unicodedata.combining(c))
        flat = (_ASCII_BATCH if joined.isascii() else _BATCH).findall(joined)
    else:
        flat = list(chain.from_iterable([*words(t), _SEP] for t in texts))
    unique = list(dict.fromkeys(flat))
    code = {w: i for i, w in enumerate(unique)}
    codes = np.fromiter(map(code.__getitem__, flat), dtype=np.int64, count=len(flat))
    sep = code.get(_SEP, -1)
    is_sep = codes == sep
    doc = np.cumsum(is_sep)
    keep = ~is_sep
    return unique, codes[keep], doc[keep]


def analyze(texts: Iterable[str]) -> Analyzed:
    """Terms and counts of each text, done for the whole batch at once (numpy for the counting)."""
    texts = list(texts)
    unique_words, word_codes, doc = _batch_words(texts)
    stemmed = stems(unique_words)  # the separator "stems" to itself and is never looked up
    terms = list(dict.fromkeys(s for w, s in zip(unique_words, stemmed, strict=True) if w != _SEP))
    term_code = {t: i for i, t in enumerate(terms)}
    word_term = np.fromiter((term_code.get(s, -1) for s in stemmed), dtype=np.int64, count=len(stemmed))
    codes = word_term[word_codes]
    width = max(len(terms), 1)
    lengths = np.bincount(doc, minlength=len(texts))[: len(texts)]
    keys, tfs = np.unique(doc * width + codes, return_counts=True)
    ptr = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // width, minlength=len(texts)), out=ptr[1:])
    return Analyzed(terms, keys % width, tfs.astype(np.int32), ptr, lengths.astype(np.int32))


def idf(n_docs: int, df: np.ndarray) -> np.ndarray:
    """ln(1 + (N - df + 0.5) / (df + 0.5)), term by term with the C library's ``log`` — the function
    PostgreSQL's ``ln`` calls, so both backends score every term to the same bit (numpy's vectorised
    log may differ in the last place)."""
    return np.array(
        [math.log(1 + (n_docs - d + 0.5) / (d + 0.5)) for d in np.asarray(df, dtype=np.float64).tolist()],
        dtype=np.float64,
    )


def term_scores(idf_t: float, tf: np.ndarray, lengths: np.ndarray, avgdl: float) -> np.ndarray:
    """One term's BM25 contribution for documents with counts ``tf`` and lengths ``lengths``."""
    tf = np.asarray(tf, dtype=np.float64)
    norm = K1 * (1.0 - B + B * np.asarray(lengths, dtype=np.float64) / avgdl)
    return idf_t * tf * (K1 + 1.0) / (tf + norm)
