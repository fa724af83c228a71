"""The embedded backend: one SQLite file plus vector snapshot files beside it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from siftline.models import StorageFigures
from siftline.storage.figures import DocumentTally
from siftline.storage.servers import LocalServers
from siftline.storage.sqlite.bm25 import TextIndex
from siftline.storage.sqlite.cache import CacheMixin
from siftline.storage.sqlite.catalog import CatalogMixin
from siftline.storage.sqlite.db import Database
from siftline.storage.sqlite.documents import DocumentsMixin
from siftline.storage.sqlite.evaluations import EvaluationsMixin
from siftline.storage.sqlite.filter_sets import FilterSets, RowidSets
from siftline.storage.sqlite.fusion import FusionMixin
from siftline.storage.sqlite.hnsw import HnswConfig
from siftline.storage.sqlite.indexer import Indexer
from siftline.storage.sqlite.interactions import InteractionsMixin
from siftline.storage.sqlite.record_writer import RecordWriter
from siftline.storage.sqlite.records import RecordsMixin
from siftline.storage.sqlite.retrievers import RetrieversMixin
from siftline.storage.sqlite.search import SearchMixin
from siftline.storage.sqlite.vectors import VectorIndex
from siftline.storage.sqlite.write_combiner import WriteCombiner


class SQLiteStorage(
    CatalogMixin,
    DocumentsMixin,
    SearchMixin,
    RetrieversMixin,
    RecordsMixin,
    CacheMixin,
    InteractionsMixin,
    FusionMixin,
    EvaluationsMixin,
    LocalServers,
):
    """Implements :class:`siftline.storage.base.Storage` over ``<data_dir>/siftline.db``."""

    name = "sqlite"
    blocking_reads = False  # one indexed read of a local file: tens of µs

    def __init__(
        self,
        database_path: Path,
        vectors_dir: Path,
        busy_timeout_ms: int = 30_000,
        index_config: HnswConfig | None = None,
    ) -> None:
        self._init_servers()
        self.db = Database(database_path, busy_timeout_ms)
        self.vectors_dir = vectors_dir
        self._indexes: dict[int, VectorIndex] = {}
        self._text_indexes: dict[int, TextIndex] = {}
        self._index_config = index_config or HnswConfig()
        self._indexer = Indexer(lambda: list(self._indexes.values()))
        self._feature_seqs: dict[tuple[str, str, str], int] = {}
        self._filter_sets = FilterSets()
        self._rowid_sets = RowidSets()
        self._applying: dict[str, int] = {}
        self._applied = threading.Condition()
        self._apply_lock = threading.Lock()
        self._combiner = WriteCombiner(self._put)
        self._record_writer = RecordWriter(self._write_record_rows)
        self._tally = DocumentTally()

    def close(self) -> None:
        self._record_writer.close()
        self._indexer.close()
        self.save_snapshots()
        self.db.close()

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "database": str(self.db.path),
            "vector_indexes_loaded": len(self._indexes),
            "text_indexes_loaded": len(self._text_indexes),
        }

    def figures(self) -> StorageFigures:
        with self.db.read() as conn:  # one snapshot: the versions, then the counts of what moved
            collections, documents = self._tally.read(conn, "?")
        statuses = [index.status() for index in list(self._indexes.values())]
        return StorageFigures(
            collections,
            documents,
            vectors_pending=sum(int(s["pending"]) for s in statuses),
            index_builds=sum(1 for s in statuses if s["building"]),
        )
