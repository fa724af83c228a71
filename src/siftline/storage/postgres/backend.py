"""The PostgreSQL backend, assembled from its parts as they land.

Issue 13 builds it store by store against the storage contracts (``siftline.testing``): keys and
namespaces (``KeyContract``, ``NamespaceContract``), retrievers (``RetrieverStoreContract``) and
execution records (``RecordStoreContract``) pass on it so far; collections, documents, vectors, BM25,
caches, interactions and evaluations follow. Until every part of
:class:`~siftline.storage.base.Storage` is there, the settings cannot select it.
"""

from __future__ import annotations

from typing import Any

from siftline.storage.postgres.catalog import CatalogMixin
from siftline.storage.postgres.collections import CollectionsMixin
from siftline.storage.postgres.db import Database
from siftline.storage.postgres.documents import DocumentsMixin
from siftline.storage.postgres.records import RecordsMixin
from siftline.storage.postgres.retrievers import RetrieversMixin


class PostgresCatalog(CatalogMixin, CollectionsMixin, DocumentsMixin, RetrieversMixin, RecordsMixin):
    """Keys, namespaces, retrievers and execution records in PostgreSQL: the part built so far."""

    def __init__(self, url: str, pool_size: int = 10, timeout_s: float = 10.0) -> None:
        self.db = Database(url, max_size=pool_size, timeout_s=timeout_s)

    def close(self) -> None:
        self.db.close()

    def info(self) -> dict[str, Any]:
        return {"backend": "postgres", "migrations": self.db.applied()}
