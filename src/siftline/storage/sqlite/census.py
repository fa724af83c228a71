"""What an embedded database holds: its schema version and, per collection, the rows of each feature.

A data directory's whole state is ``siftline.db``: keys, namespaces, collections, documents, each dense
feature's vectors (``vec_<seq>``), each BM25 feature's rows (``bm25_<seq>``, one per document, and its
vocabulary ``bm25_terms_<seq>``), retrievers and records. ``vectors/`` holds only caches of the in-memory
vector indexes (:mod:`.snapshots`); BM25 indexes have no files. The census is read inside the caller's
transaction, so it describes one snapshot; a backup stores it in its manifest and ``verify`` counts again.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from siftline.storage.sqlite.db import SCHEMA, SCHEMA_VERSION

TOTALS = ("api_keys", "namespaces", "collections", "documents", "retrievers", "executions", "interactions")
CORE_TABLES = {"meta", "api_keys", "namespaces", "collections", "features", "documents"}


class NotSiftline(Exception):
    """The file is an SQLite database but not one of Siftline's."""


def tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def schema_version(conn: sqlite3.Connection) -> int:
    if "meta" not in tables(conn):
        raise NotSiftline("it has no meta table")
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None or not str(row[0]).isdigit():
        raise NotSiftline("it has no schema_version in its meta table")
    return int(row[0])


def expected_columns() -> dict[str, list[str]]:
    """Each table of this Siftline's schema with its columns (from an empty in-memory database)."""
    ref = sqlite3.connect(":memory:")
    try:
        ref.executescript(SCHEMA)
        return {t: [r[1] for r in ref.execute(f"PRAGMA table_info({t})")] for t in sorted(tables(ref))}
    finally:
        ref.close()


def feature_tables(seq: int, kind: str) -> list[str]:
    return [f"bm25_{seq}", f"bm25_terms_{seq}"] if kind == "bm25" else [f"vec_{seq}"]


def census(conn: sqlite3.Connection) -> dict[str, Any]:
    """Schema version, totals, and per collection (sorted by id) its documents and each feature's rows:
    ``vectors`` of a dense feature; ``documents``, ``postings`` (distinct terms summed over documents)
    and ``terms`` of a BM25 feature. A feature whose table is missing counts None."""
    present = tables(conn)
    version = schema_version(conn)
    totals = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TOTALS if t in present}
    docs = dict(
        conn.execute("SELECT collection_id, count(*) FROM documents GROUP BY collection_id").fetchall()
    )
    seqs = {
        (cid, name, kind): seq
        for seq, cid, name, kind in conn.execute("SELECT seq, collection_id, name, kind FROM features")
    }
    collections = []
    rows = conn.execute(
        "SELECT c.collection_id, c.namespace_id, n.namespace_name, c.collection_name, c.config, c.write_version "
        "FROM collections c LEFT JOIN namespaces n ON n.namespace_id = c.namespace_id ORDER BY c.collection_id"
    ).fetchall()
    for cid, ns, ns_name, name, config, write_version in rows:
        features = []
        for f in json.loads(config).get("features", []):
            seq = seqs.get((cid, f["name"], f["kind"]))
            entry: dict[str, Any] = {"name": f["name"], "kind": f["kind"], "seq": seq}
            if f["kind"] != "bm25":
                entry["dimension"] = f.get("dimension")
            entry.update(_feature_rows(conn, present, seq, f["kind"]))
            features.append(entry)
        collections.append(
            {
                "collection_id": cid,
                "namespace_id": ns,
                "namespace_name": ns_name,
                "collection_name": name,
                "write_version": int(write_version),
                "documents": int(docs.get(cid, 0)),
                "features": features,
            }
        )
    return {"schema_version": version, "totals": totals, "collections": collections}


def _feature_rows(conn: sqlite3.Connection, present: set[str], seq: int | None, kind: str) -> dict[str, Any]:
    if kind == "bm25":
        if seq is None or not {f"bm25_{seq}", f"bm25_terms_{seq}"} <= present:
            return {"documents": None, "postings": None, "terms": None}
        n, size = conn.execute(f"SELECT count(*), coalesce(sum(length(terms)), 0) FROM bm25_{seq}").fetchone()
        terms = conn.execute(f"SELECT count(*) FROM bm25_terms_{seq}").fetchone()[0]
        return {"documents": int(n), "postings": int(size) // 8, "terms": int(terms)}
    if seq is None or f"vec_{seq}" not in present:
        return {"vectors": None}
    return {"vectors": int(conn.execute(f"SELECT count(*) FROM vec_{seq}").fetchone()[0])}


def schema_findings(conn: sqlite3.Connection, version: int) -> tuple[list[str], list[str], list[str]]:
    """(errors, warnings, notes) about the schema: the version, the tables and their columns."""
    errors: list[str] = []
    warnings: list[str] = []
    notes: list[str] = []
    if version > SCHEMA_VERSION:
        errors.append(
            f"schema version {version} comes from a newer Siftline (this one reads up to {SCHEMA_VERSION}): "
            "use that version to restore or serve it"
        )
    elif version < SCHEMA_VERSION:
        notes.append(
            f"schema version {version}: a server upgrades it to {SCHEMA_VERSION} when it opens the file"
        )
    present = tables(conn)
    for table, columns in expected_columns().items():
        if table not in present:
            (errors if table in CORE_TABLES else warnings).append(
                f"table {table} is missing"
                + ("" if table in CORE_TABLES else " (a server creates it, empty, when it opens the file)")
            )
            continue
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        missing = [c for c in columns if c not in have]
        if missing:
            notes.append(
                f"table {table} lacks the columns {', '.join(missing)} (a file from an older Siftline: "
                "a server adds them when it opens the file)"
            )
    return errors, warnings, notes


def consistency_findings(conn: sqlite3.Connection, counts: dict[str, Any]) -> list[str]:
    """Errors inside the database: feature tables missing, vectors of the wrong size, rows of a feature
    whose document is not in the collection, BM25 rows that are not (term, count) pairs."""
    errors = []
    for col in counts["collections"]:
        where = f"collection {col['collection_name']} ({col['collection_id']})"
        for f in col["features"]:
            label = f"{where}, feature {f['name']} ({f['kind']})"
            seq = f["seq"]
            if seq is None:
                if col["documents"]:
                    errors.append(f"{label}: not in the features table, so its rows cannot be found")
                continue
            table = feature_tables(seq, f["kind"])[0]
            if f.get("vectors", 0) is None or f.get("documents", 0) is None:
                errors.append(f"{label}: its table {table} is missing (its rows are lost)")
                continue
            orphans = conn.execute(
                f"SELECT count(*) FROM {table} t WHERE NOT EXISTS "
                "(SELECT 1 FROM documents d WHERE d.rowid = t.rowid AND d.collection_id = ?)",
                (col["collection_id"],),
            ).fetchone()[0]
            if orphans:
                errors.append(f"{label}: {orphans} rows of {table} belong to no document of the collection")
            if f["kind"] == "bm25":
                bad = conn.execute(f"SELECT count(*) FROM {table} WHERE length(terms) % 8 != 0").fetchone()[0]
                what = "BM25 rows are not (term, count) pairs"
            else:
                size = 4 * int(f.get("dimension") or 0)
                bad = conn.execute(
                    f"SELECT count(*) FROM {table} WHERE length(vec) != ?", (size,)
                ).fetchone()[0]
                what = f"vectors are not {f.get('dimension')} float32 numbers"
            if bad:
                errors.append(f"{label}: {bad} {what}")
    return errors


def compare(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    """Errors where the census ``found`` differs from the manifest's ``expected``."""
    errors = []
    if expected.get("schema_version") != found.get("schema_version"):
        errors.append(
            f"schema version {found.get('schema_version')}, the manifest says {expected.get('schema_version')}"
        )
    for table, n in (expected.get("totals") or {}).items():
        if found["totals"].get(table) != n:
            errors.append(f"{found['totals'].get(table)} rows in {table}, the manifest says {n}")
    have = {c["collection_id"]: c for c in found["collections"]}
    for col in expected.get("collections") or []:
        where = f"collection {col['collection_name']} ({col['collection_id']})"
        got = have.pop(col["collection_id"], None)
        if got is None:
            errors.append(f"{where} is missing")
            continue
        if got["documents"] != col["documents"]:
            errors.append(f"{where}: {got['documents']} documents, the manifest says {col['documents']}")
        got_features = {(f["name"], f["kind"]): f for f in got["features"]}
        for f in col["features"]:
            mine = got_features.get((f["name"], f["kind"]), {})
            for key in ("vectors", "documents", "postings", "terms"):
                if key in f and mine.get(key) != f[key]:
                    errors.append(
                        f"{where}, feature {f['name']}: {mine.get(key)} {key}, the manifest says {f[key]}"
                    )
    errors += [f"collection {c['collection_name']} ({cid}) is not in the manifest" for cid, c in have.items()]
    return errors
