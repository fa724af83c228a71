"""Online backup and restore of a data directory (``siftline backup`` / ``restore``).

**The database.** A separate process (the CLI) opens ``siftline.db`` read-only, begins one read
transaction, counts what it holds (:func:`.census.census`) and copies every page with SQLite's online
backup API inside that same transaction. In WAL mode a reader sees one snapshot while the server's
writer keeps committing, and a backup step run inside an open read transaction never restarts, so the
copy is exactly the database as of one commit, whatever is written meanwhile. The copy is switched to a
rollback journal (one self-contained file; a server turns WAL back on when it opens it).

**The index files.** ``vectors/feature-<seq>.npz`` and the HNSW segments it names are caches that a
process writes when it closes its storage; each carries its collection's ``write_version``, and a server
uses one only when that is the database's version (else it rebuilds the index from ``vec_<seq>``). So a
file is copied only when its version is the collection's version *in the copied snapshot*: then it holds
those vectors, the invariant a server relies on at start. It is read through file handles opened once:
the ``.npz`` is replaced atomically (a handle keeps the file it opened) and segment files are never
rewritten (a new save writes new names), so a save running meanwhile cannot tear the copy; a segment
deleted before it was opened makes that index be left out. Every other index (a served collection has
moved past its last saved file) is left out and rebuilt by the server at first use — the manifest
says which. BM25 indexes have no files: they are built from ``bm25_<seq>`` rows at first use.

**Restore** copies into ``<name>.restoring`` beside the target, checking each file's SHA-256 against
the manifest while copying, deletes the old ``-wal`` and ``-shm`` (SQLite would replay an old log onto
the new file), then renames the copies into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import socket
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import numpy as np

from siftline.errors import BackupError
from siftline.storage.base import Progress, Verification
from siftline.storage.sqlite import census, verify
from siftline.storage.sqlite.snapshots import snapshot_path
from siftline.storage.sqlite.verify import DATABASE, FORMAT, MANIFEST, READ_CHUNK, VECTORS

STEP_PAGES = 4096  # pages copied per backup step (16 MiB at SQLite's default 4 KiB pages)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(
    src: IO[bytes],
    dest: Path,
    progress: Progress | None,
    step: str,
    base: int,
    total: int,
    digest: Any = None,
) -> int:
    """Copy the open ``src`` into ``dest`` (fsynced), feeding ``digest`` on the way; the bytes copied."""
    done = 0
    with dest.open("wb") as out:
        while chunk := src.read(READ_CHUNK):
            out.write(chunk)
            if digest is not None:
                digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(step, base + done, total)
        out.flush()
        os.fsync(out.fileno())
    return done


class SQLiteBackups:
    """:class:`siftline.storage.base.DataBackups` of the embedded backend."""

    def backup(self, data_dir: Path, dest: Path, progress: Progress | None = None) -> dict[str, Any]:
        """``dest`` must be new or empty (the service checks): on failure, what was written there is removed."""
        if not (data_dir / DATABASE).is_file():
            raise BackupError(f"No Siftline database in {data_dir} (no {DATABASE}): nothing to back up.")
        try:
            dest.mkdir(parents=True, exist_ok=True)
            return self._backup(data_dir, dest, progress)
        except BaseException as exc:
            for name in (DATABASE, f"{DATABASE}.partial", f"{MANIFEST}.partial", MANIFEST):
                (dest / name).unlink(missing_ok=True)
            shutil.rmtree(dest / VECTORS, ignore_errors=True)
            if isinstance(exc, OSError):
                raise BackupError(f"Writing the backup into {dest} failed: {exc}") from exc
            raise

    def _backup(self, data_dir: Path, dest: Path, progress: Progress | None) -> dict[str, Any]:
        started = time.perf_counter()
        created = datetime.now(UTC)
        counts, page_size, pages = self._copy_database(data_dir / DATABASE, dest, progress)
        copied_at = time.perf_counter()
        indexes = self._copy_index_files(data_dir / VECTORS, dest / VECTORS, counts, progress)
        files = [DATABASE, *(f"{VECTORS}/{n}" for names in indexes.values() for n in names)]
        total = sum((dest / f).stat().st_size for f in files)
        done = 0
        listed = []
        for name in files:
            size = (dest / name).stat().st_size
            digest = verify.sha256(dest / name, progress, "checksums", done, total)
            listed.append({"path": name, "bytes": size, "sha256": digest})
            done += size
        manifest = {
            "format": FORMAT,
            "siftline_version": _version(),
            "created_at": created.isoformat().replace("+00:00", "Z"),
            "source": str(data_dir.resolve()),
            "host": socket.gethostname(),
            "sqlite_version": sqlite3.sqlite_version,
            "schema_version": counts["schema_version"],
            "database": {"path": DATABASE, "page_size": page_size, "pages": pages},
            "seconds": {
                "database": round(copied_at - started, 3),
                "total": round(time.perf_counter() - started, 3),
            },
            "files": listed,
            "indexes": {
                str(seq): "copied"
                if names
                else "left out: a server rebuilds it from the database at first use"
                for seq, names in indexes.items()
            },
            "census": counts,
        }
        tmp = dest / f"{MANIFEST}.partial"
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        _fsync(tmp)
        os.replace(tmp, dest / MANIFEST)  # last: a backup without its manifest is incomplete
        _fsync(dest)
        return manifest

    def _copy_database(
        self, source: Path, dest: Path, progress: Progress | None
    ) -> tuple[dict[str, Any], int, int]:
        partial = dest / f"{DATABASE}.partial"
        partial.unlink(missing_ok=True)
        try:
            conn = verify.connect(source, immutable=False)
        except sqlite3.Error as exc:
            raise BackupError(f"Cannot open {source}: {exc}") from exc
        try:
            conn.execute("BEGIN")  # the snapshot: the census and every page copied below read it
            try:
                counts = census.census(conn)
            except census.NotSiftline as exc:
                raise BackupError(f"{source} is not a Siftline database: {exc}") from exc
            page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
            target = sqlite3.connect(partial, isolation_level=None)
            try:

                def step(_status: int, remaining: int, pages: int) -> None:
                    if progress:
                        progress("database", pages - remaining, pages)

                conn.backup(target, pages=STEP_PAGES, progress=step)
                pages = int(target.execute("PRAGMA page_count").fetchone()[0])
                target.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            finally:
                target.close()
        except sqlite3.Error as exc:
            raise BackupError(f"Copying {source} failed: {exc}") from exc
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")
            conn.close()
        _fsync(partial)
        os.replace(partial, dest / DATABASE)
        return counts, page_size, pages

    def _copy_index_files(
        self, folder: Path, dest: Path, counts: dict[str, Any], progress: Progress | None
    ) -> dict[int, list[str]]:
        """Per dense feature, the index files copied (none: left out, rebuilt at first use)."""
        out: dict[int, list[str]] = {}
        for col in counts["collections"]:
            for f in col["features"]:
                if f["kind"] != "bm25" and f["seq"] is not None:
                    out[f["seq"]] = self._copy_snapshot(
                        folder, dest, f["seq"], col["write_version"], progress
                    )
        return out

    def _copy_snapshot(
        self, folder: Path, dest: Path, seq: int, version: int, progress: Progress | None
    ) -> list[str]:
        handles: list[tuple[str, IO[bytes]]] = []
        try:
            path = snapshot_path(folder, seq)
            try:
                npz = path.open("rb")
            except FileNotFoundError:
                return []
            handles.append((path.name, npz))
            with np.load(npz) as data:
                meta = json.loads(data["meta"].tobytes())
            if meta.get("version") != version:
                return []  # written before (or after) the snapshot copied: the server rebuilds it
            for name in meta.get("segments", []):
                handles.append((name, (folder / name).open("rb")))
            dest.mkdir(parents=True, exist_ok=True)
            total = sum(os.fstat(h.fileno()).st_size for _, h in handles)
            done = 0
            for name, handle in handles:
                handle.seek(0)
                done += _copy(handle, dest / name, progress, f"index files of feature {seq}", done, total)
            return [name for name, _ in handles]
        except Exception:  # replaced or removed while read, or unreadable: left out, rebuilt at first use
            for name, _ in handles:
                (dest / name).unlink(missing_ok=True)
            return []
        finally:
            for _, handle in handles:
                handle.close()

    def verify(self, path: Path, progress: Progress | None = None) -> Verification:
        return verify.verify(path, progress)

    def in_use(self, data_dir: Path) -> bool:
        """Another process holds the database open: a WAL-mode connection keeps a shared lock on the file
        for as long as it is open, so an exclusive lock cannot be had."""
        with self._held(data_dir / DATABASE) as held:
            return not held

    @staticmethod
    @contextlib.contextmanager
    def _held(path: Path) -> Iterator[bool]:
        """The database file locked exclusively for the block (True; also when there is no file), or False
        when another process has it open."""
        if not path.is_file():
            yield True
            return
        conn = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            try:
                conn.execute("PRAGMA locking_mode = EXCLUSIVE")
                conn.execute("BEGIN EXCLUSIVE")
            except sqlite3.OperationalError:
                yield False
                return
            yield True
        finally:
            conn.close()

    def restore(self, src: Path, data_dir: Path, progress: Progress | None = None) -> dict[str, Any]:
        try:
            manifest = verify.read_manifest(src)
        except ValueError as exc:
            raise BackupError(f"{src}: {exc}") from exc
        data_dir.mkdir(parents=True, exist_ok=True)
        staged_db = data_dir / f"{DATABASE}.restoring"
        staged_vectors = data_dir / f"{VECTORS}.restoring"
        shutil.rmtree(staged_vectors, ignore_errors=True)
        files = manifest["files"]
        total = sum(int(f["bytes"]) for f in files)
        done = 0
        try:
            for f in files:
                target = staged_db if f["path"] == DATABASE else staged_vectors / Path(f["path"]).name
                target.parent.mkdir(parents=True, exist_ok=True)
                done += self._copy_checked(src / f["path"], target, f, progress, done, total)
        except BaseException as exc:
            staged_db.unlink(missing_ok=True)
            shutil.rmtree(staged_vectors, ignore_errors=True)
            if isinstance(exc, OSError):
                raise BackupError(f"Copying {src} into {data_dir} failed: {exc}") from exc
            raise
        # The copy took a while: a server may have opened the old database meanwhile. Checked again, and
        # held exclusively through the swap, so nothing writes into a file about to be replaced.
        with self._held(data_dir / DATABASE) as held:
            if not held:
                staged_db.unlink(missing_ok=True)
                shutil.rmtree(staged_vectors, ignore_errors=True)
                raise BackupError(
                    f"A process opened {data_dir / DATABASE} while the backup was copied: stop it and restore again."
                )
            # the old log first: SQLite would replay it onto the restored file
            for suffix in ("-wal", "-shm", "-journal"):
                (data_dir / f"{DATABASE}{suffix}").unlink(missing_ok=True)
            os.replace(staged_db, data_dir / DATABASE)
        old = data_dir / f"{VECTORS}.replaced-{secrets.token_hex(3)}"
        if (data_dir / VECTORS).exists():
            os.replace(data_dir / VECTORS, old)
        if staged_vectors.exists():
            os.replace(staged_vectors, data_dir / VECTORS)
        shutil.rmtree(old, ignore_errors=True)
        _fsync(data_dir)
        return {"files": len(files), "bytes": total, "manifest": manifest}

    def _copy_checked(
        self, src: Path, dest: Path, entry: dict[str, Any], progress: Progress | None, base: int, total: int
    ) -> int:
        digest = hashlib.sha256()
        with src.open("rb") as fh:
            size = _copy(fh, dest, progress, "restore", base, total, digest)
        if digest.hexdigest() != entry["sha256"] or size != entry["bytes"]:
            with contextlib.suppress(OSError):
                dest.unlink()
            raise BackupError(
                f"{src} changed while it was restored (its SHA-256 no longer matches the manifest)"
            )
        return size


def _version() -> str:
    try:
        return metadata.version("siftline")
    except metadata.PackageNotFoundError:
        return "unknown"
