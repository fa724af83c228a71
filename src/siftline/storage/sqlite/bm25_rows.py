"""BM25 rows in SQLite: the source of truth the in-memory :class:`TextIndex` is built from.

Per text feature ``<seq>``:

- ``bm25_terms_<seq>(term_id, term)``: the feature's vocabulary (analysed terms, see
  :mod:`siftline.storage.text`), ids handed out in the write transaction that first uses a term;
- ``bm25_<seq>(rowid, len, terms)``: one row per document carrying the text, keyed by the document's
  rowid: its term count and its distinct terms as little-endian int32 pairs ``(term_id, count)``.

Writes address rows like the vector table does: one statement over a JSON array of
``[rowid, length, byte offset, byte count]`` slicing one blob, so SQLite does the per-row work in C.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import numpy as np
import orjson

from siftline.storage import text
from siftline.storage.sqlite.bm25 import Batch, TextIndex

_PAIR = np.dtype("<i4")
_LOAD_CHUNK = 50_000


def create_tables(conn: sqlite3.Connection, seq: int) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS bm25_terms_{seq} (term_id INTEGER PRIMARY KEY, term TEXT NOT NULL UNIQUE)"
    )
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS bm25_{seq} (rowid INTEGER PRIMARY KEY, len INTEGER NOT NULL, terms BLOB NOT NULL)"
    )


def drop_tables(conn: sqlite3.Connection, seq: int) -> None:
    conn.execute(f"DROP TABLE IF EXISTS bm25_{seq}")
    conn.execute(f"DROP TABLE IF EXISTS bm25_terms_{seq}")


def term_ids(
    conn: sqlite3.Connection, seq: int, terms: list[str], known: dict[str, int]
) -> tuple[np.ndarray, dict[str, int]]:
    """Each term's id; terms new to the feature get ids in this transaction. Returns the ids and the
    terms added (the caller publishes them to the index once the transaction commits)."""
    ids = np.fromiter((known.get(t, -1) for t in terms), dtype=np.int64, count=len(terms))
    unknown = [t for t, i in zip(terms, ids.tolist(), strict=True) if i < 0]
    added: dict[str, int] = {}
    if unknown:
        found = dict(
            conn.execute(  # another process may have added some (the index then reloads, but not yet)
                f"SELECT term, term_id FROM bm25_terms_{seq} WHERE term IN (SELECT value FROM json_each(?))",
                (orjson.dumps(unknown),),
            ).fetchall()
        )
        next_id = int(
            conn.execute(f"SELECT coalesce(max(term_id), -1) + 1 FROM bm25_terms_{seq}").fetchone()[0]
        )
        fresh = [t for t in unknown if t not in found]
        for t in fresh:
            found[t] = next_id
            next_id += 1
        if fresh:
            conn.execute(
                f"INSERT INTO bm25_terms_{seq}(term_id, term) SELECT j.value ->> 1, j.value ->> 0 FROM json_each(?) j",
                (orjson.dumps([[t, found[t]] for t in fresh]),),
            )
        added = found
        missing = ids < 0
        ids[missing] = [found[t] for t, m in zip(terms, missing.tolist(), strict=True) if m]
    return ids, added


def old_terms(conn: sqlite3.Connection, seq: int, rowids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The rowids among ``rowids`` that have a row, and all their term ids (to take them out of df)."""
    if not rowids:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    rows = conn.execute(
        f"SELECT rowid, terms FROM bm25_{seq} WHERE rowid IN (SELECT value FROM json_each(?))",
        (orjson.dumps(list(rowids)),),
    ).fetchall()
    pairs = np.frombuffer(b"".join(r[1] for r in rows), dtype=_PAIR).reshape(-1, 2)
    return np.array([r[0] for r in rows], dtype=np.int64), pairs[:, 0].astype(np.int64)


def delete_rows(conn: sqlite3.Connection, seq: int, rowids: Sequence[int]) -> None:
    if rowids:
        conn.execute(
            f"DELETE FROM bm25_{seq} WHERE rowid IN (SELECT value FROM json_each(?))",
            (orjson.dumps(list(rowids)),),
        )


def write_rows(
    conn: sqlite3.Connection, seq: int, rowids: Sequence[int], ids: np.ndarray, analyzed: text.Analyzed
) -> None:
    """Insert or replace the rows of ``analyzed``'s documents at ``rowids`` (term ids ``ids`` per code)."""
    pairs = np.empty((len(analyzed.codes), 2), dtype=_PAIR)
    pairs[:, 0] = ids[analyzed.codes]
    pairs[:, 1] = analyzed.tfs
    ptr = analyzed.ptr * 8
    rows = np.stack(
        [np.asarray(rowids, dtype=np.int64), analyzed.lengths.astype(np.int64), ptr[:-1] + 1, np.diff(ptr)],
        axis=1,
    )
    conn.execute(
        f"INSERT OR REPLACE INTO bm25_{seq}(rowid, len, terms) "
        "SELECT j.value ->> 0, j.value ->> 1, substr(?, j.value ->> 2, j.value ->> 3) FROM json_each(?) j",
        (pairs.tobytes(), orjson.dumps(rows, option=orjson.OPT_SERIALIZE_NUMPY)),
    )


def batch(rowids: Sequence[int], doc_ids: list[str], ids: np.ndarray, analyzed: text.Analyzed) -> Batch:
    return Batch(
        np.asarray(rowids, dtype=np.int64),
        doc_ids,
        ids[analyzed.codes],
        analyzed.tfs,
        analyzed.ptr,
        analyzed.lengths,
    )


def load(conn: sqlite3.Connection, seq: int, index: TextIndex, version: int) -> None:
    """(Re)build ``index`` from the feature's rows, in chunks of rowids."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (f"bm25_{seq}",)
    ).fetchone()
    vocab = dict(conn.execute(f"SELECT term, term_id FROM bm25_terms_{seq}").fetchall()) if exists else {}
    index.reset(vocab, version)
    if not exists:
        return
    last = 0
    while True:
        rows = conn.execute(
            f"SELECT b.rowid, d.document_id, b.len, b.terms FROM bm25_{seq} b JOIN documents d ON d.rowid = b.rowid "
            "WHERE b.rowid > ? ORDER BY b.rowid LIMIT ?",
            (last, _LOAD_CHUNK),
        ).fetchall()
        if not rows:
            break
        last = rows[-1][0]
        blob = b"".join(r[3] for r in rows)
        pairs = np.frombuffer(blob, dtype=_PAIR).reshape(-1, 2)
        counts = np.fromiter((len(r[3]) // 8 for r in rows), dtype=np.int64, count=len(rows))
        ptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        index.apply(
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.int64),
            Batch(
                np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
                [r[1] for r in rows],
                pairs[:, 0].astype(np.int64),
                pairs[:, 1].copy(),
                ptr,
                np.fromiter((r[2] for r in rows), dtype=np.int32, count=len(rows)),
            ),
        )
    index.compact()


def migrate_fts(conn: sqlite3.Connection) -> None:
    """Data directories from before the BM25 index kept text in FTS5 tables ``fts_<seq>``: analyse their
    text into ``bm25_<seq>`` rows and drop them (one transaction per feature)."""
    for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'fts_[0-9]*' AND name NOT GLOB '*_*_*'"
    ).fetchall():
        seq = int(name.split("_")[1])
        conn.execute("BEGIN IMMEDIATE")
        try:
            create_tables(conn, seq)
            known: dict[str, int] = {}
            cursor = conn.execute(f"SELECT rowid, text FROM fts_{seq} ORDER BY rowid")
            while rows := cursor.fetchmany(_LOAD_CHUNK):
                analyzed = text.analyze(r[1] or "" for r in rows)
                ids, added = term_ids(conn, seq, analyzed.terms, known)
                known.update(added)
                write_rows(conn, seq, [r[0] for r in rows], ids, analyzed)
            conn.execute(f"DROP TABLE fts_{seq}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
