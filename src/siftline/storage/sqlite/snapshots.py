"""Vector indexes saved beside the database (``<data_dir>/vectors/``) and read back at start.

A snapshot is only a cache of the ``vec_<feature seq>`` table: ``feature-<seq>.npz`` holds the live vectors,
their rowids and document ids and the collection's ``write_version``; each HNSW segment is a faiss
file named in it. Anything unreadable or not matching the database (another version, another
dimension, a missing segment file) is deleted and ignored: the index is then rebuilt from SQLite.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np

from siftline.storage.sqlite.blocks import BlockMatrix
from siftline.storage.sqlite.hnsw import Segment
from siftline.storage.sqlite.vectors import VectorIndex


def snapshot_path(folder: Path, seq: int) -> Path:
    return folder / f"feature-{seq}.npz"


def save(index: VectorIndex, folder: Path, seq: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = snapshot_path(folder, seq)
    with index.lock:
        rowids, doc_ids, parts, segments = index.live_contents()
        token = secrets.token_hex(4)
        names = []
        for i, (segment, _) in enumerate(segments):
            name = f"feature-{seq}-{token}-{i}.faiss"
            segment.write(folder / name)
            names.append(name)
        meta = {
            "version": index.version,
            "dimension": index.dimension,
            "segments": names,
            "parts": len(parts),
        }
        tmp = path.with_suffix(".tmp.npz")
        with open(tmp, "wb") as fh:
            arrays: dict[str, Any] = {
                "rowids": rowids,
                "doc_ids": np.frombuffer(json.dumps(doc_ids).encode(), dtype=np.uint8),
                "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            }
            arrays.update({f"slots{i}": labels for i, (_, labels) in enumerate(segments)})
            arrays.update({f"rows{i}": part for i, part in enumerate(parts)})
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        index.dirty = False
    for old in folder.glob(f"feature-{seq}-*.faiss"):
        if old.name not in names:
            with contextlib.suppress(OSError):
                old.unlink()


def load(index: VectorIndex, folder: Path, seq: int, version: int) -> bool:
    """Fill ``index`` from its snapshot when that is current; False (snapshot discarded) otherwise."""
    path = snapshot_path(folder, seq)
    if not path.exists():
        return False
    try:
        with np.load(path) as data:
            meta = json.loads(data["meta"].tobytes())
            if meta["version"] != version or meta["dimension"] != index.dimension:
                raise ValueError("stale")
            rowids = data["rowids"]
            doc_ids = json.loads(data["doc_ids"].tobytes())
            rows = BlockMatrix(index.dimension)
            rows.ensure(len(rowids))
            filled = 0
            for i in range(meta["parts"]):  # one part in memory at a time
                part = data[f"rows{i}"]
                if part.ndim != 2 or part.shape[1] != index.dimension or filled + part.shape[0] > len(rowids):
                    raise ValueError("shape")
                rows.put(filled, part)
                filled += part.shape[0]
            if filled != len(rowids) or len(doc_ids) != len(rowids):
                raise ValueError("shape")
            segments = [
                Segment.read(folder / name, data[f"slots{i}"], index.metric)
                for i, name in enumerate(meta["segments"])
            ]
        index.load(rowids, doc_ids, rows, version)
        covered = max((int(s.slots.max()) + 1 for s in segments if len(s)), default=0)
        index.adopt(segments, covered)
        index.dirty = False
        return True
    except Exception:
        discard(folder, seq)
        return False


def discard(folder: Path, seq: int) -> None:
    for old in [snapshot_path(folder, seq), *folder.glob(f"feature-{seq}-*.faiss")]:
        with contextlib.suppress(OSError):
            old.unlink()
