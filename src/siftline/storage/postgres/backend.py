"""The PostgreSQL backend: every store of :class:`~siftline.storage.base.Storage` over one database.

Built store by store against the storage contracts (``siftline.testing``), all of which pass on it
(``tests/postgres/test_postgres_contract.py``). Several Siftline servers may open one database: the
state lives in PostgreSQL only (no per-server index to keep in step), writes to one collection queue on
its row, and the shared caches' keys carry the collections' write versions.
"""

from __future__ import annotations

from typing import Any

from siftline.models import StorageFigures
from siftline.storage.figures import DocumentTally
from siftline.storage.postgres.ann import AnnConfig, Builder
from siftline.storage.postgres.cache import CacheMixin
from siftline.storage.postgres.catalog import CatalogMixin
from siftline.storage.postgres.collections import CollectionsMixin
from siftline.storage.postgres.db import Database
from siftline.storage.postgres.documents import Counts, DocumentsMixin
from siftline.storage.postgres.evaluations import EvaluationsMixin
from siftline.storage.postgres.fusion import FusionMixin
from siftline.storage.postgres.interactions import InteractionsMixin
from siftline.storage.postgres.records import RecordsMixin
from siftline.storage.postgres.retrievers import RetrieversMixin
from siftline.storage.postgres.servers import ServersMixin


class PostgresStorage(
    CatalogMixin,
    CollectionsMixin,
    DocumentsMixin,
    RetrieversMixin,
    RecordsMixin,
    CacheMixin,
    InteractionsMixin,
    FusionMixin,
    EvaluationsMixin,
    ServersMixin,
):
    blocking_reads = True  # a round trip to the database server, which may be away

    def __init__(
        self,
        url: str,
        pool_size: int = 10,
        timeout_s: float = 10.0,
        ann: AnnConfig | None = None,
        lease_s: float = 30.0,
    ) -> None:
        self.db = Database(url, max_size=pool_size, timeout_s=timeout_s)
        self.ann = ann or AnnConfig()
        self._builder = Builder(self.db, self.ann)
        self._counts = Counts()
        self._tally = DocumentTally()
        self._builder.poke()  # every feature once: an index a stopped build or a migration left to make
        self._init_servers(lease_s)

    def close(self) -> None:
        self._builder.close()
        self._close_servers()
        self.db.close()

    def info(self) -> dict[str, Any]:
        return {"backend": "postgres", "migrations": self.db.applied()}

    def figures(self) -> StorageFigures:
        """Nothing is ever pending here: pgvector keeps a built index current on every write."""
        with self.db.read() as conn:  # one snapshot: the versions, then the counts of what moved
            collections, documents = self._tally.read(conn, "%s")
        return StorageFigures(collections, documents, vectors_pending=0, index_builds=self._builder.running)
