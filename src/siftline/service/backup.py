"""Backup, verify and restore of the embedded data directory: ``siftline backup | verify | restore``.

The copying is the backend's (:class:`siftline.storage.base.DataBackups`); here are the rules around it.
A backup goes into a new or empty directory and is verified once written. A restore takes only a
backup that passes verification, and replaces a data directory that holds anything only when forced,
and never one a process has open. With ``storage=postgres`` there is nothing to copy here: every bit of
Siftline's state is in the PostgreSQL database, which PostgreSQL's own tools back up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from siftline.config import Settings
from siftline.errors import BackupError
from siftline.storage.base import Progress, Verification
from siftline.storage.factory import open_backups

POSTGRES_POINTER = (
    "SIFTLINE_STORAGE=postgres: all of Siftline's state is in the PostgreSQL database, so back it up and "
    "restore it with PostgreSQL's tools (pg_dump / pg_restore, or pg_basebackup with WAL archiving for "
    "point-in-time recovery); Siftline needs nothing else. See 'Backup and restore' in docs/POSTGRES.md."
)


@dataclass
class BackupResult:
    manifest: dict[str, Any]
    verification: Verification | None  # None when not verified


def _embedded(settings: Settings, what: str) -> None:
    if settings.storage == "postgres":
        raise BackupError(f"siftline {what} copies an embedded data directory. {POSTGRES_POINTER}")


def _entries(folder: Path) -> list[str]:
    return sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir()) if folder.is_dir() else []


def backup(
    settings: Settings, dest: Path, progress: Progress | None = None, check: bool = True
) -> BackupResult:
    """Copy the data directory (a server may be serving and writing it) into ``dest``, new or empty."""
    _embedded(settings, "backup")
    if dest.exists() and not dest.is_dir():
        raise BackupError(f"{dest} is a file: back up into a new or empty directory.")
    if _entries(dest):
        raise BackupError(f"{dest} is not empty: back up into a new or empty directory.")
    if dest.resolve() == settings.data_dir.resolve() or settings.data_dir.resolve() in dest.resolve().parents:
        raise BackupError(f"{dest} is inside the data directory {settings.data_dir}: back up somewhere else.")
    backups = open_backups()
    manifest = backups.backup(settings.data_dir, dest, progress)
    verification = backups.verify(dest, progress) if check else None
    if verification is not None and not verification.ok:
        raise BackupError(f"The backup in {dest} fails verification: " + "; ".join(verification.errors))
    return BackupResult(manifest, verification)


def verify(path: Path, progress: Progress | None = None) -> Verification:
    """Check a data directory (served or not) or a backup (against its manifest)."""
    return open_backups().verify(path, progress)


def restore(
    settings: Settings, src: Path, *, force: bool = False, progress: Progress | None = None
) -> tuple[Verification, dict[str, Any]]:
    """Put the backup ``src`` in place as the data directory; the verification of ``src`` and what was copied."""
    _embedded(settings, "restore")
    backups = open_backups()
    checked = backups.verify(src, progress)
    if not checked.ok:
        raise BackupError(f"{src} fails verification, so it is not restored: " + "; ".join(checked.errors))
    if not checked.backup:
        raise BackupError(
            f"{src} is a data directory, not a backup (no manifest.json): take one with `siftline backup`."
        )
    target = settings.data_dir
    present = _entries(target)
    if present and not force:
        shown = ", ".join(present[:5]) + (", …" if len(present) > 5 else "")
        raise BackupError(
            f"{target} is not empty ({shown}): restoring would replace its database and index files. "
            "Pass --force to replace them."
        )
    if backups.in_use(target):
        raise BackupError(
            f"A process (a Siftline server or command) has {target}/siftline.db open: stop it before restoring."
        )
    return checked, backups.restore(src, target, progress)
