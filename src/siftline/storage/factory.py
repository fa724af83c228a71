"""Picks and opens the storage backend named by the settings."""

from __future__ import annotations

from siftline.config import Settings
from siftline.storage.base import DataBackups, Storage


def open_storage(settings: Settings) -> Storage:
    if settings.storage == "postgres":
        from siftline.storage.postgres.ann import AnnConfig
        from siftline.storage.postgres.backend import PostgresStorage

        assert settings.postgres_url is not None  # the settings refuse postgres without a URL
        ann = AnnConfig(
            settings.hnsw_threshold, settings.hnsw_m, settings.hnsw_ef_construction, settings.hnsw_ef_search
        )
        return PostgresStorage(
            settings.postgres_url,
            pool_size=settings.postgres_pool_size,
            ann=ann,
            lease_s=settings.server_lease_seconds,
        )

    from siftline.storage.sqlite.backend import SQLiteStorage

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    from siftline.storage.sqlite.hnsw import HnswConfig

    config = HnswConfig(
        threshold=settings.hnsw_threshold,
        m=settings.hnsw_m,
        ef_construction=settings.hnsw_ef_construction,
        ef_search=settings.hnsw_ef_search,
        exact_filter_max=settings.exact_filter_max,
    )
    storage = SQLiteStorage(
        settings.database_path, settings.vectors_dir, settings.sqlite_busy_timeout_ms, config
    )
    return storage


def open_backups() -> DataBackups:
    """Backups of an embedded data directory (PostgreSQL keeps all of Siftline's state in its database,
    which its own tools back up: docs/POSTGRES.md)."""
    from siftline.storage.sqlite.backup import SQLiteBackups

    return SQLiteBackups()
