"""Documents, their vectors and their full-text rows in SQLite, plus the searches over them.

One document is one ``documents`` row (user fields as JSON in ``payload``); each dense feature
keeps its vectors in its own table ``vec_<feature_seq>`` (float32 blobs keyed by the document's
rowid) and in an in-memory :class:`VectorIndex`; each BM25
feature keeps its documents' analysed terms in ``bm25_<feature_seq>`` (see :mod:`.bm25_rows`) and in an
in-memory :class:`TextIndex`, so statistics never mix collections. Every write bumps the collection's
``write_version`` in the same transaction; the in-memory indexes follow once it commits.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from siftline.errors import AlreadyExistsError, ValidationError
from siftline.filters import MISSING, Node
from siftline.models import Collection, Document, DocumentPage, DocumentWrite, Feature, SortSpec
from siftline.storage.cursors import decode_cursor, encode_cursor
from siftline.storage.sqlite import bm25_rows, payload_index, snapshots
from siftline.storage.sqlite.bm25 import Batch, TextIndex
from siftline.storage.sqlite.db import Database
from siftline.storage.sqlite.filter_sets import FilterSets
from siftline.storage.sqlite.filter_sql import json_path
from siftline.storage.sqlite.indexer import Indexer
from siftline.storage.sqlite.staging import Staged, StagedTexts, StagedVectors, stage
from siftline.storage.sqlite.vectors import VectorIndex
from siftline.storage.sqlite.write_combiner import Conflict, WriteCombiner

_CHUNK = 500


def _loads(text: str) -> Any:
    """Stored JSON with integers past 64 bits exact (orjson would read them as floats; scanning for long
    digit runs first cost more than the standard library's parse of a typical payload)."""
    return json.loads(text)


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _dumps(value: Any) -> str:
    # raw UTF-8, not \u escapes: SQLite's json_extract matches raw key text, so "città" must stay unescaped
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # integers past 64 bits: the standard library writes them exactly
        return json.dumps(value, ensure_ascii=False, allow_nan=False)


class _Rows:
    """Where a batch's rows go: ``base + position`` when every document is new (the JSON prepared
    outside the lock is used as is), else each position's rowid, spelled out in the JSON."""

    def __init__(self, base: int | None, rowids: list[int]) -> None:
        self.base = base
        self.rowids = rowids

    def rowid_sql(self, position: str) -> str:
        return f"(? + {position})" if self.base is not None else position

    def params(self) -> tuple[int, ...]:
        return (self.base,) if self.base is not None else ()

    def positions_or_rowids(self, positions: list[int]) -> list[int]:
        return positions if self.base is not None else [self.rowids[p] for p in positions]


class DocumentsMixin:
    db: Database
    vectors_dir: Path
    _indexes: dict[int, VectorIndex]
    _text_indexes: dict[int, TextIndex]
    _indexer: Indexer
    _feature_seqs: dict[tuple[str, str, str], int]
    _filter_sets: FilterSets
    _index: Callable[[Collection, Feature], VectorIndex | None]  # from the search half
    _text_index: Callable[[Collection, Feature], TextIndex | None]
    _applying: dict[str, int]  # collection id -> the version whose in-memory index updates are under way
    _applied: threading.Condition
    _apply_lock: threading.Lock  # the in-memory index updates of writes, one at a time in commit order
    _combiner: WriteCombiner

    # -- feature tables -----------------------------------------------------------------------

    def _create_feature_tables(self, conn: sqlite3.Connection, collection: Collection) -> None:
        for feature in collection.features:
            seq = self._feature_seq(conn, collection.collection_id, feature)
            if feature.kind == "bm25":
                bm25_rows.create_tables(conn, seq)
            else:
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS vec_{seq} (rowid INTEGER PRIMARY KEY, vec BLOB NOT NULL)"
                )

    def _feature_seq(self, conn: sqlite3.Connection, collection_id: str, feature: Feature) -> int:
        """The feature's number, created when missing (write path: not cached, so a rollback leaves no trace)."""
        key = (collection_id, feature.name, feature.kind)
        conn.execute("INSERT OR IGNORE INTO features(collection_id, name, kind) VALUES (?,?,?)", key)
        return int(
            conn.execute(
                "SELECT seq FROM features WHERE collection_id = ? AND name = ? AND kind = ?", key
            ).fetchone()[0]
        )

    def _known_seq(self, conn: sqlite3.Connection, collection_id: str, feature: Feature) -> int:
        """The feature's number: known once read after a commit (a feature's number never changes), else
        looked up or created in this write's transaction."""
        seq = self._feature_seqs.get((collection_id, feature.name, feature.kind))
        return seq if seq is not None else self._feature_seq(conn, collection_id, feature)

    def _drop_collection_data(self, conn: sqlite3.Connection, collection_id: str) -> None:
        rows = conn.execute(
            "SELECT seq, name, kind FROM features WHERE collection_id = ?", (collection_id,)
        ).fetchall()
        for seq, name, kind in rows:
            if kind == "bm25":
                bm25_rows.drop_tables(conn, seq)
                self._text_indexes.pop(seq, None)
            else:
                conn.execute(f"DROP TABLE IF EXISTS vec_{seq}")
                self._indexes.pop(seq, None)
                snapshots.discard(self.vectors_dir, seq)
            self._feature_seqs.pop((collection_id, name, kind), None)
        conn.execute("DELETE FROM features WHERE collection_id = ?", (collection_id,))
        payload_index.drop_indexes(conn, collection_id)
        conn.execute("DELETE FROM documents WHERE collection_id = ?", (collection_id,))

    # -- writes -------------------------------------------------------------------------------

    def put_documents(
        self, collection: Collection, writes: Sequence[DocumentWrite], *, replace: bool
    ) -> None:
        if writes:
            self._combiner.write(collection, writes, replace)  # small ones are committed together

    def _put(
        self, collection: Collection, writes: Sequence[DocumentWrite], replace: bool, must_be_new: set[str]
    ) -> None:
        """One transaction writing ``writes``; ``must_be_new``: ids that may not exist yet (the combiner's
        creates, checked here so that nothing can slip in between)."""
        cid = collection.collection_id
        staged = stage(collection, writes)  # outside the lock (see staging.py)
        with self.db.write_lock:  # the SQL; then, in commit order, the in-memory indexes (_begin_apply)
            for feature in collection.features:  # loaded and current before the write, in step after
                if feature.kind == "bm25":
                    self._text_index(collection, feature)
                else:
                    self._index(collection, feature)
            version = -1
            try:
                with self.db.write() as conn:
                    existing = self._rowids(conn, cid, [w.document_id for w in writes])
                    if must_be_new and (clash := must_be_new & existing.keys()):
                        raise Conflict(clash)
                    if existing and not replace:
                        taken = sorted(existing)[:5]
                        raise AlreadyExistsError(
                            f"Documents already exist in collection '{collection.collection_name}': {', '.join(taken)}"
                            f"{' …' if len(existing) > 5 else ''}. Use PUT to replace a document, or omit document_id.",
                            {"document_ids": taken},
                        )
                    base = conn.execute("SELECT coalesce(max(rowid), 0) + 1 FROM documents").fetchone()[0]
                    rowids: list[int] = []
                    next_rowid = base
                    for w in writes:
                        rowid = existing.get(w.document_id)
                        if rowid is None:
                            rowid, next_rowid = next_rowid, next_rowid + 1
                        rowids.append(rowid)
                    at = _Rows(base if not existing else None, rowids)
                    version = self._bump(conn, cid)
                    self._insert_documents(conn, cid, at, writes, staged)
                    payload_index.note_multi_valued(
                        conn,
                        collection,
                        staged.multi_valued,
                        (w.payload for w in writes),
                        changed_since=version != collection.write_version + 1,
                    )
                    seqs = [self._known_seq(conn, cid, vectors.feature) for vectors in staged.vectors]
                    for seq, vectors in zip(seqs, staged.vectors, strict=True):
                        self._write_vectors(conn, seq, at, vectors)
                    text_seqs = [self._known_seq(conn, cid, texts.feature) for texts in staged.texts]
                    text_changes = [
                        self._write_texts(conn, seq, at, texts, writes, existing)
                        for seq, texts in zip(text_seqs, staged.texts, strict=True)
                    ]
                    self._begin_apply(cid, version)  # before the commit: see SearchMixin._caught_up
            except BaseException:  # the commit failed: nothing to wait for
                self._forget_apply(cid, version)
                raise
            self._apply_lock.acquire()  # in commit order: taken before the write lock is let go
        try:
            for seq, change in zip(text_seqs, text_changes, strict=True):
                self._apply_text(seq, version, *change)
            for seq, vectors in zip(seqs, staged.vectors, strict=True):
                index = self._indexes.get(seq)
                if index is not None and index.version == version - 1:
                    have = [rowids[p] for p in vectors.positions]
                    index.remove(sorted(set(existing.values()) - set(have)))
                    index.upsert(have, [writes[p].document_id for p in vectors.positions], vectors.matrix)
                    index.version = version
        finally:
            self._end_apply(cid, version)
        self._indexer.poke()

    def _begin_apply(self, collection_id: str, version: int) -> None:
        """Say that ``version`` of the collection is committing and its in-memory indexes will follow: a
        search that reads that version meanwhile waits for them (instead of reloading an index).

        The updates run under ``_apply_lock``, taken before the write lock is let go and released by
        :meth:`_end_apply`: so they apply in commit order, while the next write's SQL already runs (under
        load, a write's SQL and its index updates each held the write lock about as long)."""
        with self._applied:
            self._applying[collection_id] = version

    def _end_apply(self, collection_id: str, version: int) -> None:
        self._forget_apply(collection_id, version)
        self._apply_lock.release()

    def _forget_apply(self, collection_id: str, version: int) -> None:
        """``version``'s in-memory updates are done (or its commit failed). A later version of the same
        collection may have committed meanwhile (its SQL runs beside this one's updates): that one stays."""
        with self._applied:
            if self._applying.get(collection_id) == version:
                del self._applying[collection_id]
            self._applied.notify_all()

    def _insert_documents(
        self,
        conn: sqlite3.Connection,
        cid: str,
        at: _Rows,
        writes: Sequence[DocumentWrite],
        staged: Staged,
    ) -> None:
        """One statement over a JSON array (SQLite parses it in C, without the GIL: a concurrent request
        prepares its batch meanwhile); row by row when a value is beyond orjson (integers past 64 bits)."""
        upsert = "ON CONFLICT(rowid) DO UPDATE SET payload = excluded.payload, internal = excluded.internal"
        columns = "INSERT INTO documents(rowid, collection_id, document_id, payload, internal)"
        docs_json = staged.docs_json
        if docs_json is not None and at.base is None:  # replacing some: spell the rowids out
            docs_json = orjson.dumps(
                [[r, w.document_id, w.payload, w.internal] for r, w in zip(at.rowids, writes, strict=True)]
            )
        if docs_json is None:
            conn.executemany(
                f"{columns} VALUES (?,?,?,?,?) {upsert}",
                [
                    (r, cid, w.document_id, _dumps(w.payload), _dumps(w.internal))
                    for r, w in zip(at.rowids, writes, strict=True)
                ],
            )
        elif at.base is not None:
            conn.execute(
                f"{columns} SELECT ? + j.key, ?, j.value ->> 0, j.value -> 1, j.value -> 2 "
                f"FROM json_each(?) j WHERE true {upsert}",
                (at.base, cid, docs_json),
            )
        else:
            conn.execute(
                f"{columns} SELECT j.value ->> 0, ?, j.value ->> 1, j.value -> 2, j.value -> 3 "
                f"FROM json_each(?) j WHERE true {upsert}",
                (cid, docs_json),
            )

    def _write_vectors(self, conn: sqlite3.Connection, seq: int, at: _Rows, vectors: StagedVectors) -> None:
        if at.base is None:  # replacing: documents that now come without this vector lose it
            have = set(vectors.positions)
            missing = [(r,) for i, r in enumerate(at.rowids) if i not in have]
            conn.executemany(f"DELETE FROM vec_{seq} WHERE rowid = ?", missing)
        size = vectors.matrix.shape[1] * 4
        if seq not in self._indexes:  # a loaded index means its table exists
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS vec_{seq} (rowid INTEGER PRIMARY KEY, vec BLOB NOT NULL)"
            )
        conn.execute(  # one statement: the rows are slices of one blob (see _insert_documents)
            f"INSERT OR REPLACE INTO vec_{seq}(rowid, vec) "
            f"SELECT {at.rowid_sql('j.value')}, substr(?, j.key * {size} + 1, {size}) FROM json_each(?) j",
            (*at.params(), vectors.blob, orjson.dumps(at.positions_or_rowids(vectors.positions))),
        )

    def _write_texts(
        self,
        conn: sqlite3.Connection,
        seq: int,
        at: _Rows,
        texts: StagedTexts,
        writes: Sequence[DocumentWrite],
        existing: dict[str, int],
    ) -> tuple[np.ndarray, np.ndarray, Batch | None, dict[str, int]]:
        """Write the feature's rows; what the in-memory index must take out and put in once committed."""
        index = self._text_indexes.get(seq)
        replaced = list(existing.values())
        removed_rowids, removed_terms = bm25_rows.old_terms(conn, seq, replaced)
        bm25_rows.delete_rows(conn, seq, replaced)
        rowids = [at.rowids[p] for p in texts.positions]
        ids, added_terms = bm25_rows.term_ids(conn, seq, texts.analyzed.terms, index.vocab if index else {})
        bm25_rows.write_rows(conn, seq, rowids, ids, texts.analyzed)
        doc_ids = [writes[p].document_id for p in texts.positions]
        return (
            removed_rowids,
            removed_terms,
            bm25_rows.batch(rowids, doc_ids, ids, texts.analyzed),
            added_terms,
        )

    def _apply_text(
        self,
        seq: int,
        version: int,
        rowids: np.ndarray,
        terms: np.ndarray,
        added: Batch | None,
        vocab: dict[str, int],
    ) -> None:
        """Bring the feature's in-memory index to ``version`` when it was at the version before."""
        index = self._text_indexes.get(seq)
        if index is None or index.version != version - 1:
            return
        with index.lock:
            index.vocab.update(vocab)
            index.apply(rowids, terms, added)
            index.version = version

    def _bump(self, conn: sqlite3.Connection, collection_id: str) -> int:
        return int(
            conn.execute(
                "UPDATE collections SET write_version = write_version + 1 WHERE collection_id = ? "
                "RETURNING write_version",
                (collection_id,),
            ).fetchone()[0]
        )

    def _advance_indexes(self, collection: Collection, version: int) -> None:
        """A write that changed no vectors (a collection PATCH) moves the in-memory indexes to its version."""
        for feature in collection.dense_features:
            seq = self._feature_seqs.get((collection.collection_id, feature.name, feature.kind))
            index = self._indexes.get(seq) if seq is not None else None
            if index is not None and index.version == version - 1:
                index.version = version
                index.dirty = True
        for feature in collection.features:
            seq = self._feature_seqs.get((collection.collection_id, feature.name, feature.kind))
            text_index = self._text_indexes.get(seq) if seq is not None and feature.kind == "bm25" else None
            if text_index is not None and text_index.version == version - 1:
                text_index.version = version

    def _rowids(
        self, conn: sqlite3.Connection, collection_id: str, document_ids: Sequence[str]
    ) -> dict[str, int]:
        rows = conn.execute(  # one statement however many ids (SQLite reads them from a JSON array)
            "SELECT document_id, rowid FROM documents WHERE collection_id = ? "
            "AND document_id IN (SELECT value FROM json_each(?))",
            (collection_id, orjson.dumps(list(dict.fromkeys(document_ids)))),
        )
        return dict(rows.fetchall())

    def delete_documents(self, collection: Collection, document_ids: Sequence[str]) -> int:
        cid = collection.collection_id
        with self.db.write_lock:
            version = -1
            try:
                with self.db.write() as conn:
                    rowids = list(self._rowids(conn, cid, document_ids).values())
                    if not rowids:
                        return 0
                    dense = [
                        self._feature_seq(conn, cid, f) for f in collection.features if f.kind == "dense"
                    ]
                    bm25 = [self._feature_seq(conn, cid, f) for f in collection.features if f.kind == "bm25"]
                    removed = [bm25_rows.old_terms(conn, seq, rowids) for seq in bm25]
                    for chunk in _chunks(rowids):
                        marks = ",".join("?" * len(chunk))
                        conn.execute(f"DELETE FROM documents WHERE rowid IN ({marks})", list(chunk))
                        for seq in dense:
                            conn.execute(f"DELETE FROM vec_{seq} WHERE rowid IN ({marks})", list(chunk))
                    for seq in bm25:
                        bm25_rows.delete_rows(conn, seq, rowids)
                    version = self._bump(conn, cid)
                    self._begin_apply(cid, version)
            except BaseException:  # the commit failed: nothing to wait for
                self._forget_apply(cid, version)
                raise
            self._apply_lock.acquire()  # see _begin_apply
        try:
            for seq, (gone, terms) in zip(bm25, removed, strict=True):
                self._apply_text(seq, version, gone, terms, None, {})
            for seq in dense:
                index = self._indexes.get(seq)
                if index is not None and index.version == version - 1:
                    index.remove(rowids)
                    index.version = version
        finally:
            self._end_apply(cid, version)
        self._indexer.poke()
        return len(rowids)

    # -- reads --------------------------------------------------------------------------------

    def _documents_from_rows(
        self,
        conn: sqlite3.Connection | None,  # needed only with vectors
        collection: Collection,
        rows: list[tuple[Any, ...]],
        with_vectors: bool,
    ) -> list[Document]:
        docs = [Document(doc_id, collection.collection_id, _loads(p), _loads(i)) for _, doc_id, p, i in rows]
        if with_vectors and rows:
            assert conn is not None
            by_rowid = {row[0]: doc for row, doc in zip(rows, docs, strict=True)}
            for doc in docs:
                doc.vectors = {}
            for feature in collection.dense_features:
                seq = self._feature_seq_read(conn, collection.collection_id, feature)
                if seq < 0:
                    continue
                for chunk in _chunks(list(by_rowid)):
                    for rowid, blob in conn.execute(
                        f"SELECT rowid, vec FROM vec_{seq} WHERE rowid IN ({','.join('?' * len(chunk))})",
                        list(chunk),
                    ):
                        by_rowid[rowid].vectors[feature.name] = np.frombuffer(blob, dtype=np.float32).tolist()  # type: ignore[index]
        return docs

    def _feature_seq_read(self, conn: sqlite3.Connection, collection_id: str, feature: Feature) -> int:
        key = (collection_id, feature.name, feature.kind)
        if key not in self._feature_seqs:
            row = conn.execute(
                "SELECT seq FROM features WHERE collection_id = ? AND name = ? AND kind = ?", key
            ).fetchone()
            if row is None:
                return -1
            self._feature_seqs[key] = row[0]
        return self._feature_seqs[key]

    def get_documents(
        self, collection: Collection, document_ids: Sequence[str], *, with_vectors: bool = False
    ) -> list[Document]:
        sql = "SELECT rowid, document_id, payload, internal FROM documents WHERE collection_id = ? AND document_id IN ({})"
        cid, ids = collection.collection_id, list(document_ids)
        if len(ids) <= _CHUNK and not with_vectors:  # one statement reads one snapshot: no BEGIN, COMMIT
            rows = self.db.rows(sql.format(",".join("?" * len(ids))), [cid, *ids])
            docs = self._documents_from_rows(None, collection, rows, False)
        else:
            with self.db.read() as conn:
                rows = []
                for chunk in _chunks(ids):
                    rows += conn.execute(sql.format(",".join("?" * len(chunk))), [cid, *chunk]).fetchall()
                docs = self._documents_from_rows(conn, collection, rows, with_vectors)
        by_id = {d.document_id: d for d in docs}
        return [by_id[i] for i in ids if i in by_id]

    def list_documents(
        self,
        collection: Collection,
        *,
        filter: Node | None = None,
        sort: SortSpec | None = None,
        limit: int = 10,
        offset: int = 0,
        cursor: str | None = None,
        include_total: bool = False,
        with_vectors: bool = False,
    ) -> DocumentPage:
        with self.db.read() as conn:
            where, base_params = payload_index.filter_where(conn, collection, filter)
            base = f"FROM documents d WHERE {where}"
            total = (
                conn.execute(f"SELECT count(*) {base}", base_params).fetchone()[0] if include_total else None
            )
            if sort is None:  # keyset on rowid: stable and cheap at any depth
                last = decode_cursor(cursor, "r") if cursor else 0
                rows = conn.execute(
                    f"SELECT d.rowid, d.document_id, d.payload, d.internal {base} AND d.rowid > ? "
                    "ORDER BY d.rowid LIMIT ? OFFSET ?",
                    [*base_params, last, limit + 1, 0 if cursor else offset],
                ).fetchall()
                more = len(rows) > limit
                rows = rows[:limit]
                next_cursor = encode_cursor({"r": rows[-1][0]}) if more and rows else None
            else:
                start = decode_cursor(cursor, "o") if cursor else offset
                direction = "DESC" if sort.direction == "desc" else "ASC"
                key = json_path(sort.field, "d")
                rows = conn.execute(
                    f"SELECT d.rowid, d.document_id, d.payload, d.internal {base} "
                    f"ORDER BY {key} {direction}, d.rowid {direction} LIMIT ? OFFSET ?",
                    [*base_params, limit + 1, start],
                ).fetchall()
                more = len(rows) > limit
                rows = rows[:limit]
                next_cursor = encode_cursor({"o": start + limit}) if more else None
            docs = self._documents_from_rows(conn, collection, rows, with_vectors)
        return DocumentPage(docs, next_cursor, total)

    def match_documents(self, collection: Collection, document_ids: Sequence[str], filter: Node) -> set[str]:
        if not document_ids:
            return set()
        key = (collection.collection_id, collection.write_version, repr(filter))
        kept = self._filter_sets.get(key)
        if kept is None and self._filter_sets.asked_before(key):
            kept = self._passing(collection, filter)
        if kept is not None:
            return {i for i in document_ids if i in kept}
        with self.db.read() as conn:
            where, params = payload_index.filter_where(conn, collection, filter)
            rows = conn.execute(  # CROSS JOIN: SQLite walks the given ids, not an index of the filter
                "SELECT d.document_id FROM json_each(?) j CROSS JOIN documents d "
                f"ON d.collection_id = ? AND d.document_id = j.value WHERE {where}",
                [orjson.dumps(list(document_ids)), collection.collection_id, *params],
            ).fetchall()
        return {r[0] for r in rows}

    def _passing(self, collection: Collection, filter: Node) -> frozenset[str] | None:
        """Every document id the filter passes, kept when read at the collection's version (a write since
        the execution started reads a newer state: answered, not kept)."""
        with self.db.read() as conn:
            version = conn.execute(
                "SELECT write_version FROM collections WHERE collection_id = ?", (collection.collection_id,)
            ).fetchone()
            where, params = payload_index.filter_where(conn, collection, filter)
            ids = frozenset(
                r[0] for r in conn.execute(f"SELECT d.document_id FROM documents d WHERE {where}", params)
            )
        if version is not None and version[0] == collection.write_version:
            self._filter_sets.put((collection.collection_id, collection.write_version, repr(filter)), ids)
        return ids

    def field_values(self, collection: Collection, document_ids: Sequence[str], field: str) -> dict[str, Any]:
        head, *rest = field.split(".")
        if head in ("document_id", "collection_id"):  # columns: a deeper path is always missing
            found = self._rowids_read(collection, document_ids)
            if rest:
                return dict.fromkeys(found, MISSING)
            return {i: i if head == "document_id" else collection.collection_id for i in found}
        column, segments = ("internal", rest) if head == "_internal" else ("payload", [head, *rest])
        if not segments or any(ch in s for s in segments for ch in '"\\\0'):
            raise ValidationError.at(("field",), f"field {field!r} can't be read from storage")
        path = "$" + "".join(f'."{s}"' for s in segments)
        out: dict[str, Any] = {}
        with self.db.read() as conn:
            for doc_id, raw in conn.execute(
                f"SELECT d.document_id, d.{column} -> ? FROM json_each(?) j CROSS JOIN documents d "
                "ON d.collection_id = ? AND d.document_id = j.value",
                (path, orjson.dumps(list(document_ids)), collection.collection_id),
            ):
                out[doc_id] = MISSING if raw is None else _loads(raw)  # exact integers past 64 bits
        return out

    def _rowids_read(self, collection: Collection, document_ids: Sequence[str]) -> list[str]:
        with self.db.read() as conn:
            return list(self._rowids(conn, collection.collection_id, document_ids))

    def count_documents(self, collection: Collection, filter: Node | None = None) -> int:
        with self.db.read() as conn:
            where, params = payload_index.filter_where(conn, collection, filter)
            return int(conn.execute(f"SELECT count(*) FROM documents d WHERE {where}", params).fetchone()[0])
