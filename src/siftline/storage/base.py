"""Storage protocols: what the service and pipeline layers may ask of a backend.

A backend (``storage/sqlite``, later ``storage/postgres``) implements :class:`Storage`. Every
backend exception is translated here-below into :class:`siftline.errors.StorageError`; not-found
is reported by returning ``None`` / ``False`` so the service decides the user-facing error.
Namespaces scope everything: every collection and document call names its namespace or a
collection already resolved inside one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from siftline.filters import Node
from siftline.models import (
    ApiKey,
    CacheEntry,
    Collection,
    Document,
    DocumentPage,
    DocumentWrite,
    EvaluationDataset,
    EvaluationRun,
    ExecutionRecord,
    Feature,
    Interaction,
    InteractionQuery,
    Namespace,
    Posterior,
    PosteriorUpdate,
    Retriever,
    SortSpec,
    StorageFigures,
)


class KeyStore(Protocol):
    def create_key(self, key: ApiKey, key_hash: str) -> None: ...
    def key_by_hash(self, key_hash: str) -> ApiKey | None: ...
    def key_with_hash(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key with this id (revoked ones too) and its stored hash; None when unknown. For the web
        UI's sessions, signed with a secret derived from the hash (which never leaves the server)."""

    def list_keys(self) -> list[ApiKey]: ...
    def revoke_key(self, key_id_or_prefix: str) -> ApiKey | None: ...
    def count_keys(self) -> int: ...


class NamespaceStore(Protocol):
    def create_namespace(self, namespace: Namespace) -> None:
        """Raises AlreadyExistsError when the name or id is taken."""

    def get_namespace(self, id_or_name: str) -> Namespace | None: ...
    def list_namespaces(
        self, limit: int, offset: int, allowed: Sequence[str] | None = None
    ) -> tuple[list[Namespace], int]: ...
    def update_namespace(self, namespace: Namespace) -> None: ...
    def delete_namespace(self, namespace_id: str) -> bool:
        """Deletes the namespace and everything in it (collections, documents, indexes)."""


class CollectionStore(Protocol):
    def create_collection(self, collection: Collection) -> None:
        """Raises AlreadyExistsError when the name is taken in the namespace."""

    def get_collection(self, namespace_id: str, id_or_name: str) -> Collection | None: ...
    def list_collections(
        self, namespace_id: str, limit: int, offset: int
    ) -> tuple[list[Collection], int]: ...
    def update_collection(self, collection: Collection) -> None:
        """Metadata only (name, description, metadata)."""

    def delete_collection(self, collection: Collection) -> bool:
        """Deletes the collection, its documents and every index of it."""


class DocumentStore(Protocol):
    def put_documents(
        self, collection: Collection, writes: Sequence[DocumentWrite], *, replace: bool
    ) -> None:
        """Insert (``replace=False``; an existing id raises AlreadyExistsError and nothing is written)
        or upsert documents with their vectors and full-text, in one transaction; durable on return."""

    def get_documents(
        self, collection: Collection, document_ids: Sequence[str], *, with_vectors: bool = False
    ) -> list[Document]:
        """The documents found, in the order asked; missing ids are left out."""

    def delete_documents(self, collection: Collection, document_ids: Sequence[str]) -> int:
        """Removes documents from storage and from every index; returns how many existed."""

    def list_documents(
        self,
        collection: Collection,
        *,
        filter: Node | None = None,
        sort: SortSpec | None = None,
        limit: int = 10,
        offset: int = 0,
        cursor: str | None = None,
        include_total: bool = False,
        with_vectors: bool = False,
    ) -> DocumentPage: ...

    def count_documents(self, collection: Collection, filter: Node | None = None) -> int: ...


class RetrieverStore(Protocol):
    def create_retriever(self, retriever: Retriever) -> None:
        """Raises AlreadyExistsError when the name is taken in the namespace."""

    def get_retriever(self, namespace_id: str, id_or_name: str) -> Retriever | None: ...
    def list_retrievers(self, namespace_id: str, limit: int, offset: int) -> tuple[list[Retriever], int]: ...
    def update_retriever(self, retriever: Retriever) -> None:
        """Stores the new state (the caller bumps ``version``); a name clash raises AlreadyExistsError."""

    def delete_retriever(self, namespace_id: str, retriever_id: str) -> bool: ...


class RecordStore(Protocol):
    """Execution records. Writes are small and frequent (start, each stage, finish)."""

    def save_execution(self, record: ExecutionRecord) -> None:
        """Insert or replace the record (its documents too, when given)."""

    def get_execution(self, namespace_id: str, execution_id: str) -> ExecutionRecord | None: ...
    def list_executions(
        self,
        namespace_id: str,
        *,
        retriever_id: str | None = None,
        mode: str | None = None,
        statuses: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> tuple[list[ExecutionRecord], int]:
        """Newest first, without documents."""

    def fail_unfinished(self, error: str) -> int:
        """Mark failed with ``error`` every pending/processing record whose owner is not a live server
        (see :class:`Servers`; a record without owner counts as abandoned); returns how many."""

    def drop_documents(self, keep_last: int | None, before: datetime | None) -> int:
        """Retention: forget the documents of all but the newest ``keep_last`` records and of records
        created before ``before``; statistics stay. Returns how many records lost their documents."""


class CacheStore(Protocol):
    """Cached results and stage outputs, bounded in entries and bytes (least recently used evicted
    first), expired entries purged. Keys are built by the service and carry everything that can change
    the value (collections' write versions included), so a backend never has to invalidate."""

    def cache_get(self, cache_key: str, now: float) -> CacheEntry | None:
        """The live entry (not expired at ``now``), marked as used; None when absent or expired."""

    def cache_put(self, entry: CacheEntry, max_entries: int, max_bytes: int) -> None:
        """Insert or replace; then purge expired entries and evict the least recently used ones until
        at most ``max_entries`` entries of at most ``max_bytes`` bytes in all remain."""

    def cache_clear(self, namespace_id: str | None = None, retriever_id: str | None = None) -> int:
        """Drop the entries of a namespace, of a retriever (in that namespace when given), or all;
        returns how many."""

    def cache_stats(self) -> dict[str, Any]:
        """entries, bytes, and entries by kind."""


class InteractionStore(Protocol):
    """Interactions with executions' results, kept durably; identical retries are dropped."""

    def add_interactions(
        self, interactions: Sequence[Interaction], dedupe_since: datetime
    ) -> list[tuple[str, bool]]:
        """Store each interaction unless one of the same namespace with the same ``dedupe_key`` was
        recorded at or after ``dedupe_since`` (also earlier in this call). Per item: the id kept (its own,
        or the earlier identical one's) and whether it was stored. Atomic: concurrent calls never lose or
        double an interaction."""

    def get_interaction(self, namespace_id: str, interaction_id: str) -> Interaction | None: ...
    def delete_interaction(self, namespace_id: str, interaction_id: str) -> bool: ...
    def list_interactions(
        self, namespace_id: str, query: InteractionQuery, limit: int, offset: int
    ) -> tuple[list[Interaction], int]:
        """Newest first (by ``occurred_at``, then id); with the total matching."""


class FusionStore(Protocol):
    """Learned-fusion posteriors per (retriever scope, stage, context level, context key, leg)."""

    def get_posteriors(
        self, namespace_id: str, scope: str, stage: str, contexts: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, Posterior]]:
        """For each (level, context key) asked, the legs' posteriors by feature URI (absent: no evidence)."""

    def update_posteriors(
        self, namespace_id: str, scope: str, stage: str, updates: Sequence[PosteriorUpdate], now: float
    ) -> None:
        """Add evidence atomically: each posterior first decays toward its prior by ``decay`` per day since
        its last update, then gains ``success``/``failure``, and counts one more interaction. Concurrent
        updates all count."""

    def list_posteriors(self, namespace_id: str, scope: str) -> list[tuple[str, str, str, Posterior]]:
        """Every posterior of a scope as (stage, level, context key, posterior)."""


class EvaluationStore(Protocol):
    """Datasets of judged queries and evaluation runs, per namespace."""

    def create_dataset(self, dataset: EvaluationDataset) -> None:
        """Raises AlreadyExistsError when the name is taken in the namespace."""

    def get_dataset(self, namespace_id: str, id_or_name: str) -> EvaluationDataset | None: ...
    def list_datasets(
        self, namespace_id: str, limit: int, offset: int
    ) -> tuple[list[EvaluationDataset], int]:
        """Newest first, with the total."""

    def delete_dataset(self, namespace_id: str, dataset_id: str) -> bool: ...
    def save_evaluation(self, run: EvaluationRun) -> None:
        """Insert or replace."""

    def get_evaluation(self, namespace_id: str, evaluation_id: str) -> EvaluationRun | None: ...
    def list_evaluations(
        self,
        namespace_id: str,
        retriever_id: str,
        status: str | None,
        dataset_name: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[EvaluationRun], int]:
        """Newest first, with the total."""

    def unfinished_evaluations(self) -> list[EvaluationRun]:
        """Pending and running evaluations, of every namespace (for recovery: the service fails those
        whose owner is not :meth:`Servers.server_alive`)."""


class SearchIndex(Protocol):
    """Searches over a collection's features; results are (document_id, score), best first."""

    def vector_search(
        self,
        collection: Collection,
        feature: Feature,
        query: np.ndarray,
        top_k: int,
        filter: Node | None = None,
        stats: dict[str, Any] | None = None,
    ) -> list[tuple[str, float]]:
        """Higher score is better: cosine similarity, dot product, or negated euclidean distance.

        ``stats``, when given, is filled with what the search did: ``path`` (``exact`` | ``hnsw``),
        ``ef_search``, ``candidates_examined``, ``pending_scanned``, ``filter_passes``.
        """

    def vector_index_status(self, collection: Collection, feature: Feature) -> dict[str, Any]:
        """The state of a dense feature's index: path, vectors, indexed, pending, tombstones, building …"""

    def build_vector_index(self, collection: Collection, feature: Feature) -> dict[str, Any]:
        """Index every pending vector now and drop tombstones; the status after."""

    def text_search(
        self, collection: Collection, feature: Feature, query: str, top_k: int, filter: Node | None = None
    ) -> list[tuple[str, float]]:
        """BM25 over the feature's text (higher is better); terms are ORed."""

    def match_documents(self, collection: Collection, document_ids: Sequence[str], filter: Node) -> set[str]:
        """The ids among ``document_ids`` whose stored document ``filter`` matches (evaluated by storage,
        through payload indexes, without hydrating documents). Matches exactly what
        ``siftline.filters.evaluate`` matches on the stored document's wire form."""

    def field_values(self, collection: Collection, document_ids: Sequence[str], field: str) -> dict[str, Any]:
        """The value at a dotted ``field`` of each found document (as ``filters.get_path`` reads the
        stored wire form; ``filters.MISSING`` when absent), without hydrating whole documents."""


class Servers(Protocol):
    """The servers sharing this storage, and the leases of background jobs.

    Each open storage is one server, named by ``server_id``; what it runs (execution records,
    evaluation runs) carries that name as its owner, so recovery fails only the work of servers that
    are gone. A background job (recovery, retention) runs inside :meth:`lease`, which one server at a
    time holds."""

    server_id: str

    def server_alive(self, server_id: str | None) -> bool:
        """Whether that server is still running (this one always is; None never)."""

    def lease(self, job: str) -> AbstractContextManager[bool]:
        """Try to take the lease of ``job`` without waiting: the block runs with True when this server
        holds it (until the block ends), with False when another server does."""


@runtime_checkable
class Storage(
    Servers,
    KeyStore,
    NamespaceStore,
    CollectionStore,
    DocumentStore,
    RetrieverStore,
    RecordStore,
    CacheStore,
    InteractionStore,
    FusionStore,
    EvaluationStore,
    SearchIndex,
    Protocol,
):
    """A whole backend."""

    # Whether a read may wait on the network (a database server): callers on an event loop then hand
    # reads to a thread; an embedded backend's indexed read is cheaper than that hop.
    blocking_reads: bool

    def close(self) -> None: ...
    def info(self) -> dict[str, Any]: ...
    def figures(self) -> StorageFigures:
        """Collections and documents in the whole storage, vectors waiting for an index build and the
        builds running (``GET /metrics``). Cheap enough for every scrape: a collection's documents are
        counted again only once a write changed it."""


# -- copies of an embedded data directory ---------------------------------------------------------

Progress = Callable[[str, int, int], None]
"""``progress(step, done, total)``: how far one step of a long copy or check is (``total`` 0: unknown)."""


@dataclass
class Verification:
    """What a check of a data directory, or of a backup of one, found.

    ``errors``: the copy is damaged or incomplete (restoring it is refused); ``warnings``: worth a look,
    nothing lost; ``notes``: what a server does with it (e.g. rebuilds an index). ``counts`` is the
    census: schema version, totals, and per collection its documents and each feature's rows."""

    path: Path
    backup: bool  # a backup (it has a manifest), or a data directory
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


class DataBackups(Protocol):
    """Copies of an embedded backend's data directory (``storage/sqlite/backup.py``). A backend whose state
    lives in a database server has none: that server's own tools back it up."""

    def backup(self, data_dir: Path, dest: Path, progress: Progress | None = None) -> dict[str, Any]:
        """Copy ``data_dir`` (served or not: writers go on) into the empty ``dest`` as of one moment, with a
        manifest of what was copied; returns the manifest."""

    def verify(self, path: Path, progress: Progress | None = None) -> Verification:
        """Check a data directory, or a backup against its manifest."""

    def in_use(self, data_dir: Path) -> bool:
        """Whether a process (a server, a CLI command) has the data directory's database open."""

    def restore(self, src: Path, data_dir: Path, progress: Progress | None = None) -> dict[str, Any]:
        """Put the backup ``src`` in place as ``data_dir``'s database and index files (replacing them);
        returns what was copied."""
