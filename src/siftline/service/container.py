"""The services one running Siftline shares: storage, embedder and the use-case objects."""

from __future__ import annotations

from dataclasses import dataclass

from siftline.config import Settings
from siftline.features.embedder import TextEmbedder
from siftline.service import keys, namespaces
from siftline.service.documents import DocumentService
from siftline.service.evaluations import EvaluationWorker
from siftline.service.execute import CacheSettings, Executor
from siftline.service.limits import RateLimiter
from siftline.service.maintenance import Maintenance
from siftline.service.records import Recorder
from siftline.service.telemetry import Telemetry
from siftline.storage.base import Storage
from siftline.storage.factory import open_storage


@dataclass
class Services:
    settings: Settings
    storage: Storage
    embedder: TextEmbedder
    documents: DocumentService
    executor: Executor
    evaluations: EvaluationWorker
    maintenance: Maintenance
    telemetry: Telemetry
    limiter: RateLimiter  # per-key rate limits, in this server's memory

    @classmethod
    def open(cls, settings: Settings, embedder: TextEmbedder | None = None) -> Services:
        storage = open_storage(settings)
        embedder = embedder or TextEmbedder(
            settings.embed_max_tokens, settings.embed_threads, settings.embed_batch_size
        )
        documents = DocumentService(storage, embedder, settings.max_batch_documents)
        telemetry = Telemetry(storage.figures)  # fed only while GET /metrics is served
        recorder = Recorder(
            storage,
            enabled=settings.record_executions,
            keep_last=settings.retain_documents_last,
            keep_days=settings.retain_documents_days,
            observer=telemetry.observe_execution if settings.metrics_access != "off" else None,
        )
        caches = CacheSettings(
            settings.cache_max_entries, settings.cache_max_bytes, settings.embedding_cache_size
        )
        executor = Executor(storage, embedder, recorder, optimizer=settings.optimizer_enabled, caches=caches)
        maintenance = Maintenance(storage, recorder, settings.maintenance_interval_seconds)
        evaluation_worker = EvaluationWorker(storage, executor)
        limiter = RateLimiter(settings.default_rate)
        return cls(
            settings,
            storage,
            embedder,
            documents,
            executor,
            evaluation_worker,
            maintenance,
            telemetry,
            limiter,
        )

    def bootstrap(self, serving: bool = True) -> None:
        """First-start duties: the ``default`` namespace, and the bootstrap key when no key exists; a
        server (not a CLI command working beside one) also runs the maintenance rounds."""
        namespaces.ensure_namespace(self.storage, namespaces.DEFAULT_NAMESPACE)
        if serving:
            self.maintenance.run_once(at_start=True)  # then every maintenance_interval_seconds
            self.maintenance.start()
        if self.settings.bootstrap_key and self.storage.count_keys() == 0:
            keys.create_key(self.storage, "bootstrap", None, self.settings.bootstrap_key)

    def close(self) -> None:
        self.maintenance.close()
        self.evaluations.close()
        self.storage.close()
