"""A database written by schema 1 (one ``vectors`` table) opens under schema 2 with its vectors intact."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from siftline.storage.sqlite.db import SCHEMA_VERSION, Database


def test_schema_1_vectors_move_into_one_table_per_dense_feature(tmp_path: Path) -> None:
    path = tmp_path / "siftline.db"
    Database(path).close()
    old = sqlite3.connect(path, isolation_level=None)
    vec = np.arange(4, dtype=np.float32).tobytes()
    old.executescript(
        "CREATE TABLE vectors (feature_seq INTEGER NOT NULL, doc_rowid INTEGER NOT NULL, vec BLOB NOT NULL, "
        "PRIMARY KEY (feature_seq, doc_rowid)) WITHOUT ROWID;"
        "INSERT INTO features(seq, collection_id, name, kind) VALUES (1, 'c', 'emb', 'dense'), "
        "(2, 'c', 'bm25', 'bm25'), (3, 'c', 'other', 'dense');"
        "UPDATE meta SET value = '1' WHERE key = 'schema_version';"
    )
    old.executemany("INSERT INTO vectors VALUES (1, ?, ?)", [(7, vec), (9, vec[::-1])])
    old.close()

    db = Database(path)
    with db.read() as conn:
        rows = conn.execute("SELECT rowid, vec FROM vec_1 ORDER BY rowid").fetchall()
        empty = conn.execute("SELECT count(*) FROM vec_3").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    db.close()
    assert rows == [(7, vec), (9, vec[::-1])]
    assert empty == 0 and "vectors" not in tables and "vec_2" not in tables
    assert version == str(SCHEMA_VERSION)
