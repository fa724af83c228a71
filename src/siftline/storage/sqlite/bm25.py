"""The in-memory BM25 index of one text feature: term postings in segments, searched with MaxScore.

SQLite's ``bm25_<feature seq>`` table (one row per document: its term count and its distinct terms with
their counts, as term ids of ``bm25_terms_<seq>``) is the source of truth; this index is built from it on
first use and kept in step by every write of this process, like the vector index (it carries the
collection's ``write_version`` and reloads when another process wrote).

Layout: every document written gets a *slot*; slots never move while the process runs, and a replaced
or deleted document's slot is dead. A write adds one small segment (its postings sorted by term, then
slot); segments of the same size class are merged (a binary counter over log₄ sizes), so a term's
postings are a few sorted runs. Readers take the current :class:`State` (immutable once published) and
need no lock; a writer publishes a new one.

Search (exact, the formula of :mod:`siftline.storage.text`): the query's terms are ordered by an upper
bound of their contribution (idf at the term's largest count and shortest document). Term by term, in
that order, their postings' contributions are added to the candidates' partial scores; the k-th best
partial score is a lower bound of the k-th best final score, so once the bounds of the terms left add
up to less than it, no document outside the candidates can enter the top k (MaxScore). Then only the
candidates that can still get there are finished, by binary search in the remaining terms' postings:
the rare terms decide the work, and a common term costs a few lookups.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from siftline.storage import text

_MIN_SEGMENT_CLASS = 2.0  # log4 of a segment's postings below which sizes count as the same class


@dataclass(frozen=True)
class Segment:
    indptr: np.ndarray  # int64, per term id (terms known when the segment was made) + 1
    slots: np.ndarray  # int32, sorted within each term
    tfs: np.ndarray  # int32

    @property
    def size(self) -> int:
        return len(self.slots)

    def postings(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        if term + 1 >= len(self.indptr):
            return _EMPTY_I, _EMPTY_I
        lo, hi = self.indptr[term], self.indptr[term + 1]
        return self.slots[lo:hi], self.tfs[lo:hi]

    def size_class(self) -> float:
        return max(np.log(max(self.size, 1)) / np.log(4), _MIN_SEGMENT_CLASS) // 1


_EMPTY_I = np.zeros(0, dtype=np.int32)


@dataclass(frozen=True)
class State:
    """What a search reads: published whole by a writer, never changed after."""

    segments: tuple[Segment, ...] = ()
    df: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    max_tf: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    min_len: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    live: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    size: int = 0  # slots used
    count: int = 0  # live documents
    total_len: int = 0  # terms over live documents


@dataclass
class Batch:
    """Documents to add: rowids, ids, and their distinct term ids with counts (``ptr`` per document)."""

    rowids: np.ndarray
    doc_ids: list[str]
    term_ids: np.ndarray  # int64
    tfs: np.ndarray  # int32
    ptr: np.ndarray  # int64
    lengths: np.ndarray  # int32


def merge(segments: list[Segment], live: np.ndarray, n_terms: int) -> Segment:
    """One segment holding the live postings of ``segments`` (sorted by term, then slot)."""
    terms = np.concatenate(
        [np.repeat(np.arange(len(s.indptr) - 1, dtype=np.int64), np.diff(s.indptr)) for s in segments]
    )
    slots = np.concatenate([s.slots for s in segments])
    tfs = np.concatenate([s.tfs for s in segments])
    keep = live[slots]
    terms, slots, tfs = terms[keep], slots[keep], tfs[keep]
    order = np.argsort(terms, kind="stable")  # runs are sorted: timsort merges them in linear time
    return _segment(terms[order], slots[order], tfs[order], n_terms)


def _segment(terms: np.ndarray, slots: np.ndarray, tfs: np.ndarray, n_terms: int) -> Segment:
    indptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(np.bincount(terms, minlength=n_terms), out=indptr[1:])
    return Segment(indptr, slots.astype(np.int32, copy=False), tfs.astype(np.int32, copy=False))


def _union(
    cand: np.ndarray, scores: np.ndarray, slots: np.ndarray, contrib: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted candidates with summed scores, after adding ``slots`` (sorted) scoring ``contrib``."""
    if not len(cand):
        return slots, contrib
    both = np.concatenate([cand, slots])
    order = np.argsort(both, kind="stable")  # two sorted runs: merged in linear time
    both, summed = both[order], np.concatenate([scores, contrib])[order]
    first = np.empty(len(both), dtype=bool)
    first[0] = True
    np.not_equal(both[1:], both[:-1], out=first[1:])
    return both[first], np.add.reduceat(summed, np.flatnonzero(first))


def _grown(array: np.ndarray, size: int, fill: Any = 0) -> np.ndarray:
    if len(array) >= size:
        return array
    out = np.full(max(size, 2 * len(array), 1024), fill, dtype=array.dtype)
    out[: len(array)] = array
    return out


class TextIndex:
    """Postings of one BM25 feature keyed by document rowid; exact top-k search."""

    def __init__(self) -> None:
        self.version = -1
        self.lock = threading.RLock()
        self.vocab: dict[str, int] = {}
        self.state = State()
        self._lengths = np.zeros(0, dtype=np.int32)  # by slot (append-only)
        self._slot_rowid = np.zeros(0, dtype=np.int64)  # by slot (append-only)
        self._doc_ids: list[str] = []  # by slot (append-only)
        self._slot_of = np.zeros(0, dtype=np.int32)  # by rowid: its live slot, or -1

    def __len__(self) -> int:
        return self.state.count

    # -- writing ------------------------------------------------------------------------------------

    def reset(self, vocab: dict[str, int], version: int) -> None:
        with self.lock:
            self.vocab = dict(vocab)
            self.state = State()
            self._lengths = np.zeros(0, dtype=np.int32)
            self._slot_rowid = np.zeros(0, dtype=np.int64)
            self._doc_ids = []
            self._slot_of = np.zeros(0, dtype=np.int32)
            self.version = version

    def slots_of(self, rowids: np.ndarray) -> np.ndarray:
        rowids = np.asarray(rowids, dtype=np.int64)
        inside = rowids[(rowids >= 0) & (rowids < len(self._slot_of))]
        slots = self._slot_of[inside]
        return slots[slots >= 0]

    def apply(self, removed_rowids: np.ndarray, removed_terms: np.ndarray, added: Batch | None) -> None:
        """Remove documents (``removed_terms``: all their term ids), then add ``added``; publish the result."""
        with self.lock:
            s = self.state
            n_terms = len(self.vocab)
            df = np.zeros(n_terms, dtype=np.int64)
            df[: len(s.df)] = s.df
            max_tf = np.zeros(n_terms, dtype=np.int32)
            max_tf[: len(s.max_tf)] = s.max_tf[:n_terms]
            min_len = np.full(n_terms, np.iinfo(np.int32).max, dtype=np.int32)
            min_len[: len(s.min_len)] = s.min_len[:n_terms]
            live = s.live
            count, total_len, size = s.count, s.total_len, s.size
            if len(removed_rowids):
                slots = self.slots_of(removed_rowids)
                slots = slots[live[slots]]
                if len(slots):
                    live = live.copy()
                    live[slots] = False
                    self._slot_of[self._slot_rowid[slots]] = -1
                    count -= len(slots)
                    total_len -= int(self._lengths[slots].sum())
                    df -= np.bincount(removed_terms, minlength=n_terms)[:n_terms]
            segments = list(s.segments)
            if added is not None and len(added.doc_ids):
                m = len(added.doc_ids)
                new_slots = np.arange(size, size + m, dtype=np.int64)
                self._lengths = _grown(self._lengths, size + m)
                self._lengths[size : size + m] = added.lengths
                self._slot_rowid = _grown(self._slot_rowid, size + m)
                self._slot_rowid[size : size + m] = added.rowids
                self._doc_ids.extend(added.doc_ids)
                top = int(added.rowids.max()) + 1
                if top > len(self._slot_of):
                    self._slot_of = _grown(self._slot_of, top, -1)
                self._slot_of[added.rowids] = new_slots
                live = _grown(live.copy() if live is s.live else live, size + m, False)
                live[size : size + m] = True
                doc_of_posting = np.repeat(new_slots, np.diff(added.ptr))
                df += np.bincount(added.term_ids, minlength=n_terms)
                np.maximum.at(max_tf, added.term_ids, added.tfs)
                np.minimum.at(min_len, added.term_ids, added.lengths[doc_of_posting - size])
                order = np.argsort(added.term_ids, kind="stable")
                segments.append(
                    _segment(added.term_ids[order], doc_of_posting[order], added.tfs[order], n_terms)
                )
                size += m
                count += m
                total_len += int(added.lengths.sum())
                segments = self._merged(segments, live, n_terms)
            self.state = State(tuple(segments), df, max_tf, min_len, live, size, count, total_len)

    @staticmethod
    def _merged(segments: list[Segment], live: np.ndarray, n_terms: int) -> list[Segment]:
        while len(segments) >= 2 and segments[-2].size_class() <= segments[-1].size_class():
            segments[-2:] = [merge(segments[-2:], live, n_terms)]
        return segments

    def compact(self) -> None:
        """Everything in one segment, dead postings dropped (after loading, or on request)."""
        with self.lock:
            s = self.state
            if len(s.segments) > 1 or any(not s.live[seg.slots].all() for seg in s.segments):
                seg = merge(list(s.segments), s.live, len(self.vocab))
                self.state = replace(s, segments=(seg,))

    # -- searching ----------------------------------------------------------------------------------

    def search(
        self, terms: list[str], top_k: int, allowed_rowids: np.ndarray | None = None
    ) -> list[tuple[str, float]]:
        s = self.state
        ids = [self.vocab[t] for t in terms if t in self.vocab]
        ids = [t for t in dict.fromkeys(ids) if t < len(s.df) and s.df[t] > 0]
        if not ids or top_k <= 0 or s.count == 0:
            return []
        ok = s.live[: s.size]
        if allowed_rowids is not None:
            mask = np.zeros(s.size, dtype=bool)
            slots = self.slots_of(allowed_rowids)
            mask[slots[slots < s.size]] = True
            ok = ok & mask
        avgdl = s.total_len / s.count
        idf = text.idf(s.count, s.df[ids])
        canonical = list(zip(ids, idf.tolist(), strict=True))  # query order: the order scores are summed in
        norm_min = text.K1 * (1 - text.B + text.B * s.min_len[ids] / avgdl)
        tf_max = s.max_tf[ids].astype(np.float64)
        bound = idf * tf_max * (text.K1 + 1) / (tf_max + norm_min)
        order = np.argsort(-bound, kind="stable")
        ids = [ids[i] for i in order]
        idf, bound = idf[order], bound[order]
        rest = np.concatenate([np.cumsum(bound[::-1])[::-1], [0.0]])  # rest[i]: bounds of terms i..
        lengths = self._lengths
        cand, scores = _EMPTY_I, np.zeros(0, dtype=np.float64)
        for i, term in enumerate(ids):
            theta = (
                np.partition(scores, len(scores) - top_k)[len(scores) - top_k] if len(cand) >= top_k else 0.0
            )
            if theta > rest[i]:  # no document outside ``cand`` can reach the top k: finish the candidates
                keep = scores + rest[i] >= theta  # those that still can, with the remaining terms
                cand, scores = cand[keep], scores[keep]
                for j in range(i, len(ids)):
                    scores += self._lookup(s, ids[j], float(idf[j]), cand, lengths, avgdl)
                break
            slots, tfs = self._postings(s, term, ok)
            contrib = text.term_scores(float(idf[i]), tfs, lengths[slots], avgdl)
            cand, scores = _union(cand, scores, slots, contrib)
        # The loop summed in bound order; the final scores are summed in query order, as every backend
        # sums them, so that equal scores are equal to the bit (ties then go by document id). Only the
        # candidates within rounding of the k-th score can change places.
        if len(cand) > top_k:
            kth = np.partition(scores, len(scores) - top_k)[len(scores) - top_k]
            keep = scores >= kth - 1e-9 * abs(kth)
            cand = cand[keep]
        scores = np.zeros(len(cand), dtype=np.float64)
        for term, idf_t in canonical:
            scores += self._lookup(s, term, idf_t, cand, lengths, avgdl)
        return self._top(cand, scores, top_k)

    @staticmethod
    def _postings(s: State, term: int, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The allowed live documents holding ``term`` (ascending slots) and their counts."""
        runs = [seg.postings(term) for seg in s.segments]  # segments hold ascending slot ranges
        slots = np.concatenate([r[0] for r in runs]) if len(runs) != 1 else runs[0][0]
        tfs = np.concatenate([r[1] for r in runs]) if len(runs) != 1 else runs[0][1]
        keep = ok[slots]
        return slots[keep], tfs[keep]

    @staticmethod
    def _lookup(
        s: State, term: int, idf_t: float, cand: np.ndarray, lengths: np.ndarray, avgdl: float
    ) -> np.ndarray:
        """``term``'s contribution to each of ``cand`` (binary search in its postings)."""
        out = np.zeros(len(cand), dtype=np.float64)
        for seg in s.segments:
            slots, tfs = seg.postings(term)
            if not len(slots) or not len(cand):
                continue
            pos = np.searchsorted(slots, cand)
            pos[pos == len(slots)] = 0
            hit = slots[pos] == cand
            if hit.any():
                out[hit] = text.term_scores(idf_t, tfs[pos[hit]], lengths[cand[hit]], avgdl)
        return out

    def _top(self, cand: np.ndarray, scores: np.ndarray, top_k: int) -> list[tuple[str, float]]:
        if len(cand) > top_k:
            kth = np.partition(scores, len(scores) - top_k)[len(scores) - top_k]
            keep = scores >= kth  # every tie at the cut, so ids decide among them
            cand, scores = cand[keep], scores[keep]
        ranked = sorted(
            (
                (self._doc_ids[slot], float(score))
                for slot, score in zip(cand.tolist(), scores.tolist(), strict=True)
            ),
            key=lambda pair: (-pair[1], pair[0]),
        )
        return ranked[:top_k]

    def stats(self) -> dict[str, Any]:
        """Size figures of the index (documents, terms, segments, postings)."""
        s = self.state
        return {
            "documents": s.count,
            "terms": len(self.vocab),
            "segments": len(s.segments),
            "postings": sum(seg.size for seg in s.segments),
        }
