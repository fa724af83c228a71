"""Picks and opens the storage backend named by the settings."""

from __future__ import annotations

from siftline.config import Settings
from siftline.storage.base import Storage


def open_storage(settings: Settings) -> Storage:
    from siftline.storage.sqlite.backend import SQLiteStorage

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    storage = SQLiteStorage(settings.database_path, settings.vectors_dir, settings.sqlite_busy_timeout_ms)
    return storage
