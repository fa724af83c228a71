"""Documents, their vectors and BM25 postings in PostgreSQL, and the searches over them.

A write is one transaction that locks its collection's row (writes to one collection queue; other
collections' writes go on), bumps the collection's write version, and stores each document's payload
and ``_internal`` as ``jsonvalues.exact_json`` with their case-folded copy, its vectors (unit length
for cosine, as the SQLite backend stores them) and its BM25 postings (``storage/text.py``'s analysis).
A replaced document keeps its ``rowid``, so listings keep their order.

Searches are exact for now: vectors by pgvector's operators over the feature's rows, BM25 by one SQL
statement with the formula of ``storage/text.py`` (scores equal to the SQLite backend's); HNSW indexes
come next. Filters compile with ``filter_sql``; a filter that compiles only to a superset (a regex)
is narrowed with ``filters.evaluate`` and the search then runs over the rowids that pass.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import psycopg

from siftline.errors import AlreadyExistsError, BadRequestError, StorageError, ValidationError
from siftline.filters import Node, evaluate, get_path
from siftline.models import Collection, Document, DocumentPage, DocumentWrite, Feature, SortSpec
from siftline.storage import text
from siftline.storage.cursors import decode_cursor, encode_cursor
from siftline.storage.postgres.ann import AnnConfig, Builder, index_info, index_state, vectors_table
from siftline.storage.postgres.db import Database
from siftline.storage.postgres.filter_sql import Frag, compile_filter, path_value, q
from siftline.storage.postgres.jsonvalues import (
    check_storable,
    exact_json,
    folded,
    negative_zeros,
    restore_negative_zeros,
)

_DOC = "d.rowid, d.document_id, d.payload, d.internal, d.folded->'z'"  # z: where -0.0 was (jsonvalues)


def _vector_text(vector: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in np.asarray(vector, dtype=np.float32).tolist()) + "]"


def _prepared(vector: np.ndarray, metric: str | None) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    if (metric or "cosine") == "cosine":
        vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
    return vector.astype(np.float32)


def _wire(collection_id: str, row: tuple[Any, ...]) -> dict[str, Any]:
    """The dict ``filters.evaluate`` reads, from a ``_DOC`` row (its ``-0.0`` restored)."""
    _, doc_id, payload, internal, zeros = row
    payload = restore_negative_zeros(payload, (zeros or {}).get("p"))
    internal = restore_negative_zeros(internal, (zeros or {}).get("i"))
    return {"document_id": doc_id, "collection_id": collection_id, **payload, "_internal": internal}


def _zeros(w: DocumentWrite) -> dict[str, Any]:
    """Where the payload and internal fields hold ``-0.0`` (``numeric`` cannot), when they do."""
    p, i = negative_zeros(w.payload), negative_zeros(w.internal)
    return {"z": {"p": p, "i": i}} if p or i else {}


def _copy(cur: Any, target: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Rows into ``table(columns)`` with COPY: one stream instead of a statement per row."""
    with cur.copy(f"COPY {target} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


class Counts:
    """Aggregates kept per (collection, write version, what): a filtered search weighs its filter's share
    with two counts, and BM25 reads its collection statistics; both grow with the collection and repeat
    for every query until a write changes the version (which makes the kept ones unreachable: they age
    out, least recently used)."""

    def __init__(self, size: int = 512) -> None:
        self._kept: OrderedDict[tuple[str, int, str], tuple[Any, ...]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def at(self, conn: Any, collection_id: str) -> Callable[..., tuple[Any, ...]]:
        """``kept(what, sql, params)``: the row ``sql`` returns, kept under ``what`` for the collection's
        write version in ``conn``'s snapshot (read once, on first use)."""
        version: int | None = None

        def kept(what: str, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...]:
            nonlocal version
            if version is None:
                row = conn.execute(
                    "SELECT write_version FROM collections WHERE collection_id = %s", (collection_id,)
                ).fetchone()
                version = int(row[0]) if row else -1
            key = (collection_id, version, what)
            with self._lock:
                found = self._kept.get(key)
                if found is not None:
                    self._kept.move_to_end(key)
                    return found
            value = tuple(conn.execute(sql, params).fetchone())
            with self._lock:
                self._kept[key] = value
                while len(self._kept) > self._size:
                    self._kept.popitem(last=False)
            return value

        return kept


class DocumentsMixin:
    db: Database
    ann: AnnConfig
    _builder: Builder
    _counts: Counts

    # -- features ---------------------------------------------------------------------------------

    def _seqs(self, conn: Any, collection_id: str) -> dict[tuple[str, str], int]:
        return {
            (name, kind): seq
            for seq, name, kind in conn.execute(
                "SELECT seq, name, kind FROM features WHERE collection_id = %s", (collection_id,)
            )
        }

    # -- filters ----------------------------------------------------------------------------------

    def _where(self, conn: Any, collection: Collection, filter: Node | None) -> Frag:
        """An exact WHERE over ``documents d`` (the collection's rows only)."""
        base = q("d.collection_id = {}", collection.collection_id)
        compiled = compile_filter(filter, "d")
        where = Frag(f"({base.sql} AND {compiled.sql})", (*base.params, *compiled.params))
        if compiled.exact or filter is None:
            return where
        rows = conn.execute(f"SELECT {_DOC} FROM documents d WHERE {where.sql}", where.params).fetchall()
        passing = [r[0] for r in rows if evaluate(filter, _wire(collection.collection_id, r))]
        return q("d.rowid = ANY({})", passing)

    # -- writes -----------------------------------------------------------------------------------

    def put_documents(
        self, collection: Collection, writes: Sequence[DocumentWrite], *, replace: bool
    ) -> None:
        if not writes:
            return
        for i, w in enumerate(writes):
            check_storable(w.payload, ["body", "documents", i])
            check_storable(w.internal, ["body", "documents", i, "_internal"])
        cid = collection.collection_id
        with self._builder.writing(cid), self.db.write() as conn:
            locked = conn.execute(
                "UPDATE collections SET write_version = write_version + 1 WHERE collection_id = %s "
                "RETURNING write_version",
                (cid,),
            ).fetchone()
            if locked is None:
                raise ValidationError.at(
                    ["collection"], f"collection '{collection.collection_name}' no longer exists"
                )
            ids = [w.document_id for w in writes]
            existing = dict(
                conn.execute(
                    "SELECT document_id, rowid FROM documents WHERE collection_id = %s AND document_id = ANY(%s)",
                    (cid, ids),
                ).fetchall()
            )
            if existing and not replace:
                taken = sorted(existing)[:5]
                raise AlreadyExistsError(
                    f"Documents already exist in collection '{collection.collection_name}': {', '.join(taken)}"
                    f"{' …' if len(existing) > 5 else ''}. Use PUT to replace a document, or omit document_id.",
                    {"document_ids": taken},
                )
            rows = [
                (exact_json(w.payload), exact_json(w.internal),
                 exact_json({"p": folded(w.payload), "i": folded(w.internal), "d": w.document_id.casefold(),
                             "c": cid.casefold(), **_zeros(w)}))
                for w in writes
            ]  # fmt: skip
            with conn.cursor() as cur:
                updates = [
                    (payload, internal, shadow, existing[w.document_id])
                    for w, (payload, internal, shadow) in zip(writes, rows, strict=True)
                    if w.document_id in existing
                ]
                if updates:
                    cur.executemany(
                        "UPDATE documents SET payload = %s::jsonb, internal = %s::jsonb, folded = %s::jsonb "
                        "WHERE rowid = %s",
                        updates,
                    )
                new = [
                    (w.document_id, *row)
                    for w, row in zip(writes, rows, strict=True)
                    if w.document_id not in existing
                ]
                inserted: dict[str, int] = {}
                if new:  # one statement: rowids are drawn in the order given (listings keep that order)
                    columns = [list(c) for c in zip(*new, strict=True)]
                    inserted = dict(
                        cur.execute(
                            "INSERT INTO documents(collection_id, document_id, payload, internal, folded) "
                            "SELECT %s, t.d, t.p::jsonb, t.i::jsonb, t.f::jsonb "
                            "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) WITH ORDINALITY "
                            "AS t(d, p, i, f, n) ORDER BY t.n RETURNING document_id, rowid",
                            (cid, *columns),
                        ).fetchall()
                    )
                rowids = [existing.get(w.document_id) or inserted[w.document_id] for w in writes]
                if existing:  # a replaced document's old vectors and text go; the new ones follow
                    old = list(existing.values())
                    self._delete_vectors(cur, cid, old)
                    cur.execute("DELETE FROM bm25_docs WHERE rowid = ANY(%s)", (old,))
                seqs = self._seqs(conn, cid)
                for feature in collection.features:
                    seq = seqs.get((feature.name, feature.kind))
                    if seq is None:
                        continue
                    if feature.kind == "dense":
                        self._write_vectors(cur, seq, feature, writes, rowids)
                    elif feature.kind == "bm25":
                        self._write_texts(cur, seq, feature, writes, rowids)
        dense = [seq for (_, kind), seq in seqs.items() if kind == "dense"]
        self._builder.poke(dense)  # a feature may have reached the HNSW threshold

    @staticmethod
    def _write_vectors(
        cur: Any, seq: int, feature: Feature, writes: Sequence[DocumentWrite], rowids: list[int]
    ) -> None:
        rows = []
        for w, rowid in zip(writes, rowids, strict=True):
            vector = w.vectors.get(feature.name)
            if vector is None:
                continue
            if feature.dimension is not None and np.asarray(vector).size != feature.dimension:
                raise ValidationError.at(
                    ["body", "vectors", feature.name],
                    f"has {np.asarray(vector).size} numbers; feature '{feature.uri}' takes {feature.dimension}",
                )
            rows.append((seq, rowid, _vector_text(_prepared(vector, feature.metric))))
        if rows:
            _copy(cur, f"{vectors_table(seq)}(feature_seq, rowid, embedding)", rows)

    def _delete_vectors(self, conn: Any, collection_id: str, rowids: list[int]) -> None:
        """The vectors of these documents, from each dense feature's table (no foreign key does it)."""
        for (_, kind), seq in self._seqs(conn, collection_id).items():
            if kind == "dense":
                conn.execute(f"DELETE FROM {vectors_table(seq)} WHERE rowid = ANY(%s)", (rowids,))

    @staticmethod
    def _write_texts(
        cur: Any, seq: int, feature: Feature, writes: Sequence[DocumentWrite], rowids: list[int]
    ) -> None:
        pairs = [
            (rowid, w.texts[feature.name])
            for w, rowid in zip(writes, rowids, strict=True)
            if w.texts.get(feature.name)
        ]
        if not pairs:
            return
        analyzed = text.analyze(t for _, t in pairs)
        _copy(
            cur,
            "bm25_docs(feature_seq, rowid, length)",
            [(seq, rowid, int(analyzed.lengths[i])) for i, (rowid, _) in enumerate(pairs)],
        )
        postings = []
        for i, (rowid, _) in enumerate(pairs):
            lo, hi = int(analyzed.ptr[i]), int(analyzed.ptr[i + 1])
            for code, tf in zip(analyzed.codes[lo:hi].tolist(), analyzed.tfs[lo:hi].tolist(), strict=True):
                postings.append((seq, analyzed.terms[code], rowid, tf))
        if postings:
            _copy(cur, "bm25_postings(feature_seq, term, rowid, tf)", postings)

    def delete_documents(self, collection: Collection, document_ids: Sequence[str]) -> int:
        if not document_ids:
            return 0
        with self.db.write() as conn:
            conn.execute(
                "UPDATE collections SET write_version = write_version + 1 WHERE collection_id = %s",
                (collection.collection_id,),
            )
            gone = [
                r[0]
                for r in conn.execute(
                    "DELETE FROM documents WHERE collection_id = %s AND document_id = ANY(%s) RETURNING rowid",
                    (collection.collection_id, list(document_ids)),
                )
            ]
            if gone:
                self._delete_vectors(conn, collection.collection_id, gone)
            return len(gone)

    # -- reads ------------------------------------------------------------------------------------

    def _documents(
        self, conn: Any, collection: Collection, rows: list[Any], with_vectors: bool
    ) -> list[Document]:
        docs = [
            Document(
                r[1],
                collection.collection_id,
                restore_negative_zeros(r[2], (r[4] or {}).get("p")),
                restore_negative_zeros(r[3], (r[4] or {}).get("i")),
            )
            for r in rows
        ]
        if with_vectors and rows:
            by_rowid = {r[0]: doc for r, doc in zip(rows, docs, strict=True)}
            for doc in docs:
                doc.vectors = {}
            for (name, kind), seq in self._seqs(conn, collection.collection_id).items():
                if kind != "dense":
                    continue
                for rowid, values in conn.execute(
                    f"SELECT rowid, embedding::real[] FROM {vectors_table(seq)} WHERE rowid = ANY(%s)",
                    (list(by_rowid),),
                ):
                    by_rowid[rowid].vectors[name] = [float(x) for x in values]  # type: ignore[index]
        return docs

    def get_documents(
        self, collection: Collection, document_ids: Sequence[str], *, with_vectors: bool = False
    ) -> list[Document]:
        ids = list(document_ids)
        if not ids:
            return []
        with self.db.read() as conn:
            rows = conn.execute(
                f"SELECT {_DOC} FROM documents d WHERE d.collection_id = %s AND d.document_id = ANY(%s)",
                (collection.collection_id, ids),
            ).fetchall()
            docs = self._documents(conn, collection, rows, with_vectors)
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
            where = self._where(conn, collection, filter)
            total = (
                int(
                    conn.execute(
                        f"SELECT count(*) FROM documents d WHERE {where.sql}", where.params
                    ).fetchone()[0]
                )
                if include_total
                else None
            )
            if sort is None:  # keyset on rowid: stable and cheap at any depth
                last = decode_cursor(cursor, "r") if cursor else 0
                rows = conn.execute(
                    f"SELECT {_DOC} FROM documents d WHERE {where.sql} AND d.rowid > %s ORDER BY d.rowid "
                    "LIMIT %s OFFSET %s",
                    (*where.params, last, limit + 1, 0 if cursor else offset),
                ).fetchall()
                more = len(rows) > limit
                rows = rows[:limit]
                next_cursor = encode_cursor({"r": rows[-1][0]}) if more and rows else None
            else:
                start = decode_cursor(cursor, "o") if cursor else offset
                order = _order_by(sort)
                rows = conn.execute(
                    f"SELECT {_DOC} FROM documents d WHERE {where.sql} ORDER BY {order.sql} LIMIT %s OFFSET %s",
                    (*where.params, *order.params, limit + 1, start),
                ).fetchall()
                more = len(rows) > limit
                rows = rows[:limit]
                next_cursor = encode_cursor({"o": start + limit}) if more else None
            docs = self._documents(conn, collection, rows, with_vectors)
        return DocumentPage(docs, next_cursor, total)

    def count_documents(self, collection: Collection, filter: Node | None = None) -> int:
        with self.db.read() as conn:
            where = self._where(conn, collection, filter)
            return int(
                conn.execute(f"SELECT count(*) FROM documents d WHERE {where.sql}", where.params).fetchone()[
                    0
                ]
            )

    def match_documents(self, collection: Collection, document_ids: Sequence[str], filter: Node) -> set[str]:
        if not document_ids:
            return set()
        with self.db.read() as conn:
            where = self._where(conn, collection, filter)
            rows = conn.execute(
                f"SELECT d.document_id FROM documents d WHERE {where.sql} AND d.document_id = ANY(%s)",
                (*where.params, list(document_ids)),
            ).fetchall()
        return {r[0] for r in rows}

    def field_values(self, collection: Collection, document_ids: Sequence[str], field: str) -> dict[str, Any]:
        with self.db.read() as conn:
            rows = conn.execute(
                f"SELECT {_DOC} FROM documents d WHERE d.collection_id = %s AND d.document_id = ANY(%s)",
                (collection.collection_id, list(document_ids)),
            ).fetchall()
        out: dict[str, Any] = {}
        for row in rows:
            out[row[1]] = get_path(_wire(collection.collection_id, row), field)
        return out

    # -- searches ---------------------------------------------------------------------------------

    def vector_search(
        self,
        collection: Collection,
        feature: Feature,
        query: np.ndarray,
        top_k: int,
        filter: Node | None = None,
        stats: dict[str, Any] | None = None,
    ) -> list[tuple[str, float]]:
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if feature.dimension is not None and query.shape[0] != feature.dimension:
            raise BadRequestError(
                f"The query vector has {query.shape[0]} dimensions but feature '{feature.uri}' "
                f"has {feature.dimension}; send a vector of {feature.dimension} numbers."
            )
        if top_k <= 0:
            return []
        metric = feature.metric or "cosine"
        vector = _vector_text(_prepared(query, metric))
        distance = "<->" if metric == "euclidean" else "<#>"  # L2 distance, or the negated dot product
        try:
            return self._vector_search(collection, feature, vector, distance, top_k, filter, stats)
        except StorageError as exc:  # the collection was deleted meanwhile, its vectors' table with it
            if isinstance(exc.__cause__, psycopg.errors.UndefinedTable):
                return []
            raise

    def _vector_search(
        self,
        collection: Collection,
        feature: Feature,
        vector: str,
        distance: str,
        top_k: int,
        filter: Node | None,
        stats: dict[str, Any] | None,
    ) -> list[tuple[str, float]]:
        with self.db.read() as conn:
            seq = self._seqs(conn, collection.collection_id).get((feature.name, "dense"))
            if seq is None:
                return []
            table = vectors_table(seq)
            where = self._where(conn, collection, filter)
            state, total = index_info(conn, seq)  # total: the index's own estimate, read without a scan
            hnsw = feature.dimension is not None and state == "valid"
            share, ef = 1.0, max(self.ann.ef_search, top_k)
            kept = self._counts.at(conn, collection.collection_id)
            if hnsw and filter is not None:  # as the embedded backend: few passing → exact; else a wider walk
                total = kept(table, f"SELECT count(*) FROM {table}")[0]  # the share needs the real count
                passing = kept(
                    f"{table} {filter!r}",
                    f"SELECT count(*) FROM {table} v JOIN documents d ON d.rowid = v.rowid WHERE {where.sql}",
                    tuple(where.params),
                )[0]
                share = passing / max(1, total)
                hnsw = passing > max(self.ann.exact_filter_floor, int(self.ann.exact_filter_max * total))
            if hnsw:  # the index's own expression, so the planner can walk it
                ef = max(self.ann.ef_for(total, share), top_k)
                conn.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
                if filter is not None:  # keep walking the graph while the filter drops candidates
                    conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                dim = int(feature.dimension)  # type: ignore[arg-type]
                key = f"(v.embedding::vector({dim})) {distance} %s::vector({dim})"
                # the inner query is the shape pgvector's index answers: one feature's rows by distance
                passes = (
                    ""
                    if filter is None
                    else f" AND EXISTS (SELECT 1 FROM documents d WHERE d.rowid = v.rowid AND {where.sql})"
                )
                # with a filter the scan runs in relaxed order (later rounds of the walk may find closer
                # passing rows), so the first ef passing rows are kept and the best k taken from them,
                # as the embedded backend takes the best k of the passing rows its walk visited
                fetch = top_k if filter is None else max(top_k, ef)
                rows = conn.execute(
                    f"SELECT d.document_id, hits.dist FROM (SELECT v.rowid, {key} AS dist FROM {table} v "
                    f"WHERE true{passes} ORDER BY {key} LIMIT %s) hits "
                    'JOIN documents d ON d.rowid = hits.rowid ORDER BY hits.dist, d.document_id COLLATE "C" '
                    "LIMIT %s",
                    (vector, *(where.params if filter is not None else ()), vector, fetch, top_k),
                ).fetchall()
            else:
                rows = conn.execute(
                    f"SELECT d.document_id, v.embedding {distance} %s::vector AS dist FROM {table} v "
                    f"JOIN documents d ON d.rowid = v.rowid WHERE {where.sql} "
                    'ORDER BY dist, d.document_id COLLATE "C" LIMIT %s',
                    (vector, *where.params, top_k),
                ).fetchall()
            if stats is not None and not hnsw:  # an exact search examined every vector of the feature
                total = kept(table, f"SELECT count(*) FROM {table}")[0]
        if stats is not None:
            stats.update({"path": "hnsw" if hnsw else "exact", "ef_search": ef if hnsw else None,
                          "candidates_examined": 0 if hnsw else total, "pending_scanned": 0,
                          "segments": 1 if hnsw else 0})  # fmt: skip
        return [(doc_id, -float(dist)) for doc_id, dist in rows]

    def vector_index_status(self, collection: Collection, feature: Feature) -> dict[str, Any]:
        with self.db.read() as conn:
            seq = self._seqs(conn, collection.collection_id).get((feature.name, "dense"))
            count = (
                0
                if seq is None
                else int(conn.execute(f"SELECT count(*) FROM {vectors_table(seq)}").fetchone()[0])
            )
            state = "none" if seq is None else index_state(conn, seq)
        return {
            "path": "hnsw" if state == "valid" else "exact",
            "vectors": count,
            "indexed": count,  # pgvector indexes every write at once: nothing waits
            "pending": 0,
            "tombstones": 0,
            "segments": 1 if state == "valid" else 0,
            "building": state == "building",
            "m": self.ann.m,
            "ef_construction": self.ann.ef_construction,
            "ef_search": self.ann.ef_search,
            "threshold": self.ann.threshold,
        }

    def build_vector_index(self, collection: Collection, feature: Feature) -> dict[str, Any]:
        """Build the feature's HNSW index now when it has reached the threshold (below it, search is exact
        by design); the status after."""
        status = self.vector_index_status(collection, feature)
        if status["vectors"] >= self.ann.threshold and status["path"] != "hnsw" and feature.dimension:
            with self.db.read() as conn:
                seq = self._seqs(conn, collection.collection_id)[(feature.name, "dense")]
            self._builder.build(seq, feature.dimension, feature.metric, wait=True)
            status = self.vector_index_status(collection, feature)
        return status

    def text_search(
        self, collection: Collection, feature: Feature, query: str, top_k: int, filter: Node | None = None
    ) -> list[tuple[str, float]]:
        terms = text.query_terms(query)
        if not terms or top_k <= 0:
            return []
        with self.db.read() as conn:
            seq = self._seqs(conn, collection.collection_id).get((feature.name, "bm25"))
            if seq is None:
                return []
            n, total = self._counts.at(conn, collection.collection_id)(
                f"bm25_docs:{seq}",
                "SELECT count(*), coalesce(sum(length), 0) FROM bm25_docs WHERE feature_seq = %s",
                (seq,),
            )
            if not n:
                return []
            avgdl = float(total) / float(n)
            where = self._where(conn, collection, filter)
            # One pass over the query terms' postings (each term's document frequency counted over them);
            # scores summed per rowid; document ids read only for the rows that can make the page: all
            # of them with a filter, else the top k and every row tied with the k-th.
            # every operation in float8, in numpy's order (``text.term_scores``), and each document's
            # terms summed in query order: scores equal to the bit to the embedded backend's
            scored = """
                WITH hits AS (
                    SELECT p.rowid, p.tf::float8 AS tf, q.ord,
                           count(*) OVER (PARTITION BY p.term)::float8 AS df
                    FROM unnest(%s::text[]) WITH ORDINALITY AS q(term, ord)
                    JOIN bm25_postings p ON p.feature_seq = %s AND p.term = q.term
                ), scored AS (
                    SELECT h.rowid, sum(
                        ln(1::float8 + (%s::float8 - h.df + 0.5::float8) / (h.df + 0.5::float8)) * h.tf
                        * %s::float8 / (h.tf + %s::float8 * (1::float8 - %s::float8
                                                              + %s::float8 * b.length::float8 / %s::float8))
                        ORDER BY h.ord
                    ) AS score
                    FROM hits h JOIN bm25_docs b ON b.feature_seq = %s AND b.rowid = h.rowid
                    GROUP BY h.rowid
                )"""
            k1, b = text.K1, text.B
            params: tuple[Any, ...] = (terms, seq, float(n), k1 + 1.0, k1, b, b, avgdl, seq)
            if filter is None:
                candidates = (
                    "(SELECT * FROM scored WHERE score >= coalesce((SELECT score FROM scored "
                    "ORDER BY score DESC OFFSET %s LIMIT 1), '-infinity'::float8))"
                )
                params += (top_k - 1,)
            else:
                candidates = "scored"
            rows = conn.execute(
                f"{scored} SELECT d.document_id, s.score FROM {candidates} s JOIN documents d ON d.rowid = s.rowid "
                f'WHERE {where.sql} ORDER BY s.score DESC, d.document_id COLLATE "C" LIMIT %s',
                (*params, *where.params, top_k),
            ).fetchall()
        return [(doc_id, float(score)) for doc_id, score in rows]


def _order_by(sort: SortSpec) -> Frag:
    """ORDER BY a field as the SQLite backend orders ``json_extract``: missing and null first, then
    numbers and booleans (as 1 and 0) by value, then strings (and lists and objects, by their JSON text)
    by code point; ties by rowid; ``desc`` reverses all of it."""
    direction = "DESC" if sort.direction == "desc" else "ASC"
    head, *rest = sort.field.split(".")
    if head in ("document_id", "collection_id"):
        if rest:
            return Frag(f"d.rowid {direction}")
        return Frag(f'd.{head} COLLATE "C" {direction}, d.rowid {direction}')
    column, segments = ("d.internal", rest) if head == "_internal" else ("d.payload", [head, *rest])
    value = path_value(Frag(column), segments)
    t = q("jsonb_typeof({})", value)
    parts = [
        q("CASE WHEN {} IS NULL OR {} = 'null' THEN 0 WHEN {} IN ('number', 'boolean') THEN 1 ELSE 2 END", t, t, t),
        q("CASE WHEN {} = 'number' THEN ({} #>> ARRAY[]::text[])::numeric "
          "WHEN {} = 'boolean' THEN (CASE WHEN {} = 'true'::jsonb THEN 1 ELSE 0 END) END", t, value, t, value),
        q("CASE WHEN {} = 'string' THEN ({} #>> ARRAY[]::text[]) WHEN {} IN ('array', 'object') THEN ({})::text END "
          'COLLATE "C"', t, value, t, value),
    ]  # fmt: skip
    sql = ", ".join(f"{p.sql} {direction}" for p in parts) + f", d.rowid {direction}"
    return Frag(sql, tuple(x for p in parts for x in p.params))
