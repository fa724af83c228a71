"""Payload indexes as SQLite indexes: one partial expression index per declared field and collection.

``CREATE INDEX px_<collection>_<field hash> ON documents(json_extract(payload, '$."field"'))
WHERE collection_id = '<collection>'``. A filter uses it through :func:`filter_sql.index_hint`: the
queries below add an implied term on the same expression (with the collection id inlined, so SQLite
can prove the partial index applies). A field that ever held a list or an object in the collection
is noted in ``multi_valued`` and gets no hint (lists match by element, which the index can't answer).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from typing import Any

import orjson

from siftline.filters import Node
from siftline.models import Collection
from siftline.storage.sqlite.filter_sql import compile_filter, fold_expression, index_expression, index_hint

FOLDED_TYPES = ("keyword", "text")  # these indexes also index the case-folded text (see fold_expression)


def _name(collection_id: str, field: str) -> str:
    return f"px_{collection_id}_{hashlib.sha1(field.encode()).hexdigest()[:12]}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sync_indexes(conn: sqlite3.Connection, collection: Collection) -> None:
    """Create the indexes of the declared fields and drop those of fields no longer declared."""
    cid = collection.collection_id
    wanted = {}
    for index in collection.payload_indexes:
        expr = index_expression(index.field_name)
        if expr is not None:
            wanted[_name(cid, index.field_name)] = expr
        fold = fold_expression(index.field_name) if index.type in FOLDED_TYPES else None
        if fold is not None:
            wanted[_name(cid, index.field_name) + "_f"] = fold
    existing = {r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE ? ESCAPE '\\'",
        (f"px\\_{cid.replace('_', chr(92) + '_')}\\_%",),
    )}  # fmt: skip
    for name in existing - set(wanted):
        conn.execute(f'DROP INDEX IF EXISTS "{name}"')
    fields = {_name(cid, p.field_name): p.field_name for p in collection.payload_indexes}
    fields |= {name + "_f": field for name, field in fields.items()}
    for name, expr in wanted.items():
        if name not in existing:  # documents written before the field was indexed may hold lists in it
            _note_existing_multi_valued(conn, cid, fields[name])
        conn.execute(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON documents({expr}) WHERE collection_id = {_literal(cid)}'
        )


def _note_existing_multi_valued(conn: sqlite3.Connection, collection_id: str, field: str) -> None:
    """Note ``field`` as multi-valued if a stored document holds a list or an object in it, or a list on the
    way to it (as :func:`holds_many` decides for new writes)."""
    parts = field.split(".")
    paths = ["$" + "".join(f'."{p}"' for p in parts[: i + 1]) for i in range(len(parts))]
    if any(ch in p for p in parts for ch in '"\\\0'):
        return  # never hinted (index_expression refuses such names)
    tests = ["json_type(payload, ?) = 'array'"] * (len(paths) - 1) + [
        "json_type(payload, ?) IN ('array', 'object')"
    ]
    found = conn.execute(
        f"SELECT 1 FROM documents WHERE collection_id = ? AND ({' OR '.join(tests)}) LIMIT 1",
        (collection_id, *paths),
    ).fetchone()
    if found:
        conn.execute(
            "INSERT OR IGNORE INTO multi_valued(collection_id, field) VALUES (?, ?)", (collection_id, field)
        )


def declared_fields(conn: sqlite3.Connection, collection_id: str) -> set[str]:
    """The indexed fields as stored now (another instance may have declared more since a write began)."""
    row = conn.execute("SELECT config FROM collections WHERE collection_id = ?", (collection_id,)).fetchone()
    if row is None:
        return set()
    return {p["field_name"] for p in orjson.loads(row[0]).get("payload_indexes", [])}


def drop_indexes(conn: sqlite3.Connection, collection_id: str) -> None:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE ? ESCAPE '\\'",
        (f"px\\_{collection_id.replace('_', chr(92) + '_')}\\_%",),
    ).fetchall()
    for (name,) in rows:
        conn.execute(f'DROP INDEX IF EXISTS "{name}"')
    conn.execute("DELETE FROM multi_valued WHERE collection_id = ?", (collection_id,))


def holds_many(payload: Any, parts: list[str]) -> bool:
    value = payload
    for part in parts:
        if isinstance(value, list):
            return True
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return isinstance(value, list | dict)


def multi_valued_fields(collection: Collection, payloads: Iterable[dict[str, Any]]) -> set[str]:
    """The indexed fields that hold a list or an object in one of ``payloads``."""
    fields = [(p.field_name, p.field_name.split(".")) for p in collection.payload_indexes]
    if not fields:
        return set()
    return {name for payload in payloads for name, parts in fields if holds_many(payload, parts)}


def note_multi_valued(
    conn: sqlite3.Connection,
    collection: Collection,
    found: set[str],
    payloads: Iterable[dict[str, Any]] = (),
    *,
    changed_since: bool = True,
) -> None:
    """Record indexed fields found holding a list or an object (see :func:`multi_valued_fields`); fields
    indexed since ``collection`` was read are checked here, in the write's transaction, over ``payloads``
    (``changed_since`` False: nothing was written to the collection since it was read, so there are none)."""
    newer = (
        declared_fields(conn, collection.collection_id) - {p.field_name for p in collection.payload_indexes}
        if changed_since
        else set()
    )
    if newer:
        found = found | {f for payload in payloads for f in newer if holds_many(payload, f.split("."))}
    if found:
        conn.executemany(
            "INSERT OR IGNORE INTO multi_valued(collection_id, field) VALUES (?, ?)",
            [(collection.collection_id, name) for name in sorted(found)],
        )


def hinted_fields(conn: sqlite3.Connection, collection: Collection) -> list[str]:
    """Indexed fields whose index may answer a filter: declared, and never multi-valued."""
    declared = [p.field_name for p in collection.payload_indexes]
    if not declared:
        return []
    multi = {r[0] for r in conn.execute(
        "SELECT field FROM multi_valued WHERE collection_id = ?", (collection.collection_id,)
    )}  # fmt: skip
    return [f for f in declared if f not in multi]


def filter_where(
    conn: sqlite3.Connection, collection: Collection, filter: Node | None
) -> tuple[str, list[Any]]:
    """The WHERE clause selecting ``filter``'s documents of ``collection`` (alias ``d``), indexes usable.

    The collection id is inlined (a partial index applies only when SQLite sees the literal) and the
    index hint terms come before the full filter, which still decides every match.
    """
    hinted = hinted_fields(conn, collection) if filter is not None else []
    folded = [p.field_name for p in collection.payload_indexes if p.type in FOLDED_TYPES]
    hint, hint_params, exact = index_hint(filter, hinted, "d", folded)
    # likely(): the collection term matches most rows of a collection's scan, so SQLite prefers a payload
    # index for a range (without it, it takes the collection's rows and tests each); the term still
    # implies the partial indexes' WHERE, and alone it still uses the collection index
    scope = f"likely(d.collection_id = {_literal(collection.collection_id)}) AND {hint}"
    if exact:  # the indexed terms say it all: no per-row JSON parsing
        return scope, hint_params
    where, params = compile_filter(filter, "d")
    return f"{scope} AND ({where})", [*hint_params, *params]
