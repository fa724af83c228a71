"""``siftline verify``: is a data directory (or a backup of one) whole, and does it agree with itself?

In order: the files a backup's manifest lists (size and SHA-256), SQLite's integrity check, the schema
(:func:`.census.schema_findings`), the census and the rows behind it (:func:`.census.consistency_findings`),
the census against the manifest's, and the vector index files against the database. An index file is
only a cache (:mod:`.snapshots`): one older or newer than its collection is discarded by a server, which
builds the index from the database at first use, and that is a note; one that claims to be current but
holds other vectors would be searched as is, and that is an error.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from siftline.storage.base import Progress, Verification
from siftline.storage.sqlite import census
from siftline.storage.sqlite.filter_sql import register_functions
from siftline.storage.sqlite.snapshots import snapshot_path

DATABASE = "siftline.db"
MANIFEST = "manifest.json"
VECTORS = "vectors"
FORMAT = "siftline-backup/1"
READ_CHUNK = 1 << 20
SAMPLE = 64  # vectors of an index file compared with the database's


def connect(path: Path, *, immutable: bool) -> sqlite3.Connection:
    """A connection that only reads. ``immutable``: a backup, which nothing writes (no locks, no side files);
    else a data directory, possibly served meanwhile (a transaction reads one snapshot). Not ``mode=ro``
    there: a read-only connection cannot remove the ``-wal`` and ``-shm`` files it makes when it is the
    last one to close (a read-write one folds a left-over log into the file then, as a server's start would).
    The filter functions are registered: payload indexes are on expressions that call them, and the
    integrity check evaluates those."""
    mode = "?mode=ro&immutable=1" if immutable else "?mode=rw"
    conn = sqlite3.connect(path.absolute().as_uri() + mode, uri=True, isolation_level=None)
    register_functions(conn)
    if not immutable:
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA query_only = ON")
    return conn


def sha256(
    path: Path, progress: Progress | None = None, step: str = "checksums", base: int = 0, total: int = 0
) -> str:
    digest = hashlib.sha256()
    done = base
    with path.open("rb") as fh:
        while chunk := fh.read(READ_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(step, done, total)
    return digest.hexdigest()


def read_manifest(root: Path) -> dict[str, Any]:
    """The backup's manifest; ValueError saying what is wrong with it."""
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{MANIFEST} cannot be read: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{MANIFEST} is not a Siftline backup manifest (format {FORMAT})")
    files = manifest.get("files")
    if (
        not isinstance(files, list)
        or not isinstance(manifest.get("census"), dict)
        or not all(
            isinstance(f, dict)
            and isinstance(f.get("path"), str)
            and isinstance(f.get("bytes"), int)
            and isinstance(f.get("sha256"), str)
            for f in files
        )
    ):
        raise ValueError(f"{MANIFEST} is malformed: it needs files [{{path, bytes, sha256}}] and a census")
    for f in files:
        name = f["path"]
        parts = name.split("/")
        if name != DATABASE and not (
            len(parts) == 2 and parts[0] == VECTORS and parts[1] not in ("", ".", "..")
        ):
            raise ValueError(
                f"{MANIFEST} lists {name!r}: a backup holds only {DATABASE} and {VECTORS}/<file>"
            )
    return manifest


def check_files(
    root: Path, manifest: dict[str, Any], report: Verification, progress: Progress | None
) -> None:
    """Every file the manifest lists is there with its size and SHA-256; nothing else in ``vectors/``."""
    files = manifest["files"]
    total = sum(f["bytes"] for f in files)
    done = 0
    for f in files:
        path = root / f["path"]
        if not path.is_file():
            report.errors.append(f"{f['path']}: missing (the manifest lists it)")
        elif path.stat().st_size != f["bytes"]:
            report.errors.append(
                f"{f['path']}: {path.stat().st_size} bytes, the manifest says {f['bytes']} (truncated or changed)"
            )
        elif sha256(path, progress, "checksums", done, total) != f["sha256"]:
            report.errors.append(
                f"{f['path']}: its SHA-256 differs from the manifest's: the file was changed or damaged "
                "after the backup"
            )
        done += f["bytes"]
    listed = {f["path"] for f in files}
    extra = (
        sorted(p.relative_to(root).as_posix() for p in (root / VECTORS).rglob("*") if p.is_file())
        if (root / VECTORS).is_dir()
        else []
    )
    for name in extra:
        if name not in listed:
            report.warnings.append(f"{name}: not in the manifest (ignored by restore)")


def integrity(conn: sqlite3.Connection, report: Verification, progress: Progress | None) -> bool:
    if progress:
        progress("integrity check", 0, 0)
    try:
        problems = [r[0] for r in conn.execute("PRAGMA integrity_check(20)")]
    except sqlite3.DatabaseError as exc:
        problems = [str(exc)]
    if progress:
        progress("integrity check", 1, 1)
    if problems != ["ok"]:
        report.errors.append(f"{DATABASE}: SQLite's integrity check failed: " + "; ".join(problems[:5]))
        return False
    return True


def check_index_files(
    root: Path, conn: sqlite3.Connection, counts: dict[str, Any], report: Verification
) -> None:
    folder = root / VECTORS
    known: set[int] = set()
    for col in counts["collections"]:
        for f in col["features"]:
            if f["kind"] == "bm25" or f["seq"] is None:
                continue
            known.add(f["seq"])
            label = f"collection {col['collection_name']}, feature {f['name']}"
            path = snapshot_path(folder, f["seq"])
            if not path.exists():
                if f["vectors"]:
                    report.notes.append(
                        f"{label}: no index file; a server builds the index from the database's {f['vectors']} "
                        "vectors at first use"
                    )
                continue
            problem = _index_problem(path, conn, f, col["write_version"])
            name = path.relative_to(root).as_posix()
            if problem is None:
                report.notes.append(f"{label}: index file {name} is current: a server uses it as is")
            elif problem.startswith("stale"):
                report.notes.append(
                    f"{label}: index file {name} is {problem}: a server rebuilds it from the database"
                )
            elif problem.startswith("unreadable"):
                report.warnings.append(
                    f"{label}: index file {name} is {problem}: a server discards it and rebuilds"
                )
            else:
                report.errors.append(
                    f"{label}: index file {name} claims the collection's current version but {problem}: "
                    "a server would search it as is; delete it to have the index rebuilt"
                )
    if any(f["kind"] == "bm25" for col in counts["collections"] for f in col["features"]):
        report.notes.append("BM25 indexes have no files: a server builds each from its rows at first use")
    if folder.is_dir():
        for path in sorted(folder.glob("feature-*.npz")):
            seq = path.stem.removeprefix("feature-")
            if seq.isdigit() and int(seq) not in known:
                report.notes.append(
                    f"{VECTORS}/{path.name}: no feature {seq} in the database (a left-over, ignored)"
                )


def _index_problem(path: Path, conn: sqlite3.Connection, feature: dict[str, Any], version: int) -> str | None:
    """None when the index file holds exactly the feature's vectors; else what is wrong ("stale …",
    "unreadable …", or how it disagrees with the database)."""
    seq, dimension = feature["seq"], feature.get("dimension")
    try:
        with np.load(path) as data:
            meta = json.loads(data["meta"].tobytes())
            if meta["version"] != version:
                return f"stale (it has version {meta['version']} of the collection, the database {version})"
            rowids = np.asarray(data["rowids"], dtype=np.int64)
            doc_ids = json.loads(data["doc_ids"].tobytes())
            first = data["rows0"] if meta["parts"] else np.zeros((0, dimension or 0), np.float32)
            missing = [n for n in meta["segments"] if not (path.parent / n).is_file()]
    except Exception as exc:
        return f"unreadable ({type(exc).__name__}: {exc})"
    if meta["dimension"] != dimension:
        return f"has {meta['dimension']}-d vectors where the feature has {dimension}"
    if missing:
        return f"names HNSW segment files that are missing ({', '.join(missing)})"
    stored = np.fromiter((r[0] for r in conn.execute(f"SELECT rowid FROM vec_{seq}")), dtype=np.int64)
    if (
        len(rowids) != len(stored)
        or len(doc_ids) != len(rowids)
        or not np.array_equal(np.sort(rowids), stored)
    ):
        return f"holds {len(rowids)} vectors where the database has {len(stored)} (or others)"
    picks = list(range(min(SAMPLE, len(first))))
    if picks:
        rows = dict(
            conn.execute(
                f"SELECT v.rowid, v.vec FROM vec_{seq} v WHERE v.rowid IN (SELECT value FROM json_each(?))",
                (json.dumps([int(rowids[i]) for i in picks]),),
            ).fetchall()
        )
        names = dict(
            conn.execute(
                "SELECT rowid, document_id FROM documents WHERE rowid IN (SELECT value FROM json_each(?))",
                (json.dumps([int(rowids[i]) for i in picks]),),
            ).fetchall()
        )
        for i in picks:
            rowid = int(rowids[i])
            if names.get(rowid) != doc_ids[i] or not np.array_equal(
                np.frombuffer(rows[rowid], dtype=np.float32), first[i]
            ):
                return (
                    f"holds another vector or document id than the database for document {names.get(rowid)}"
                )
    return None


def verify(root: Path, progress: Progress | None = None) -> Verification:
    report = Verification(root, backup=(root / MANIFEST).exists())
    if not root.is_dir():
        report.errors.append(f"{root} is not a directory")
        return report
    if not (root / DATABASE).is_file():
        report.errors.append(f"no {DATABASE} in {root}: not a Siftline data directory or backup")
        return report
    if report.backup:
        try:
            report.manifest = read_manifest(root)
        except ValueError as exc:
            report.errors.append(str(exc))
            return report
        check_files(root, report.manifest, report, progress)
    try:
        conn = connect(root / DATABASE, immutable=report.backup)
    except sqlite3.Error as exc:
        report.errors.append(f"{DATABASE} cannot be opened: {exc}")
        return report
    try:
        conn.execute("BEGIN")  # one snapshot for every check, also while a server writes
        _check_database(root, conn, report, progress)
    except sqlite3.DatabaseError as exc:
        report.errors.append(f"{DATABASE}: {exc}")
    finally:
        conn.close()
    return report


def _check_database(
    root: Path, conn: sqlite3.Connection, report: Verification, progress: Progress | None
) -> None:
    if not integrity(conn, report, progress):
        return
    try:
        version = census.schema_version(conn)
    except census.NotSiftline as exc:
        report.errors.append(f"{DATABASE} is not a Siftline database: {exc}")
        return
    errors, warnings, notes = census.schema_findings(conn, version)
    report.errors += errors
    report.warnings += warnings
    report.notes += notes
    if progress:
        progress("counts", 0, 0)
    report.counts = census.census(conn)
    report.errors += census.consistency_findings(conn, report.counts)
    if report.manifest is not None:
        try:
            report.errors += [
                f"{DATABASE}: {e}" for e in census.compare(report.manifest["census"], report.counts)
            ]
        except (KeyError, TypeError, AttributeError) as exc:
            report.errors.append(f"{MANIFEST}: its census is malformed ({type(exc).__name__}: {exc})")
    check_index_files(root, conn, report.counts, report)
    if progress:
        progress("counts", 1, 1)
