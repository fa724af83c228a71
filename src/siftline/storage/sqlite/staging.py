"""A batch of writes made ready for SQLite before the write lock is taken.

Everything that only depends on the documents — their JSON, the prepared vectors as one blob, the BM25
terms, which indexed fields hold lists — is computed here, outside the lock, so the locked part of a
write is SQL that SQLite runs without the GIL while a concurrent request prepares its own batch.
Rows are addressed by their position in the batch: new documents get consecutive rowids
(``base + position``); a batch that replaces documents maps positions to rowids in the lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import orjson

from siftline.models import Collection, DocumentWrite, Feature
from siftline.storage import text
from siftline.storage.sqlite import payload_index
from siftline.storage.sqlite.vectors import prepare


@dataclass
class StagedVectors:
    feature: Feature
    positions: list[int]  # of the writes that carry this vector
    matrix: np.ndarray  # prepared (unit length for cosine)
    blob: bytes


@dataclass
class StagedTexts:
    feature: Feature
    positions: list[int]
    analyzed: text.Analyzed  # terms and counts of each position's text


@dataclass
class Staged:
    docs_json: bytes | None  # [[document_id, payload, internal], ...]; None when orjson can't encode it
    multi_valued: set[str]
    vectors: list[StagedVectors]
    texts: list[StagedTexts]


def stage(collection: Collection, writes: Sequence[DocumentWrite]) -> Staged:
    try:
        docs_json: bytes | None = orjson.dumps([[w.document_id, w.payload, w.internal] for w in writes])
    except TypeError:  # integers past 64 bits: written row by row
        docs_json = None
    vectors = []
    for feature in collection.dense_features:
        positions = [i for i, w in enumerate(writes) if feature.name in w.vectors]
        matrix = (
            prepare(
                np.stack([writes[i].vectors[feature.name] for i in positions]), feature.metric or "cosine"
            )
            if positions
            else np.zeros((0, feature.dimension or 0), dtype=np.float32)
        )
        vectors.append(StagedVectors(feature, positions, matrix, matrix.tobytes()))
    texts = []
    for feature in collection.features:
        if feature.kind == "bm25":
            pairs = [(i, w.texts[feature.name]) for i, w in enumerate(writes) if w.texts.get(feature.name)]
            texts.append(StagedTexts(feature, [i for i, _ in pairs], text.analyze(t for _, t in pairs)))
    multi = payload_index.multi_valued_fields(collection, (w.payload for w in writes))
    return Staged(docs_json, multi, vectors, texts)
