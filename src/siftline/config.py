"""Settings: the one reader of environment variables (``SIFTLINE_*``).

Every field has a default and a description; a bad value aborts start-up with a message naming
the variable. Tests build ``Settings(...)`` directly and never touch the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from siftline.models import Rate


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIFTLINE_", extra="ignore")

    data_dir: Path = Field(
        Path("./siftline-data"),
        description="Directory holding the SQLite database (siftline.db) and the vector files beside it.",
    )
    storage: Literal["sqlite", "postgres"] = Field(
        "sqlite",
        description="The storage backend: sqlite (embedded, in data_dir) or postgres (SIFTLINE_POSTGRES_URL; "
        "several servers may share it). See docs/POSTGRES.md.",
    )
    postgres_url: str | None = Field(
        None,
        description="PostgreSQL connection URL for storage=postgres, e.g. "
        "postgresql://user:password@host:5432/siftline (PostgreSQL 15+ with pgvector 0.8+).",
    )
    postgres_pool_size: int = Field(
        10,
        ge=1,
        le=1000,
        description="Connections each server keeps to PostgreSQL at most (storage=postgres).",
    )
    server_lease_seconds: float = Field(
        30.0,
        ge=1,
        le=3600,
        description="storage=postgres: a server whose heartbeat (every fifth of this) stopped this many "
        "seconds ago is gone, and the executions and evaluations it left unfinished are failed.",
    )
    maintenance_interval_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="How often a server looks for work left unfinished by servers that are gone and "
        "applies record retention (one server at a time does each job).",
    )
    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port the HTTP server listens on.")
    bootstrap_key: str | None = Field(
        None,
        description="An API key (sk_live_… or sk_test_…) stored on first start when no key exists yet, "
        "so a fresh deployment can be used without running `siftline keys create`.",
    )
    max_batch_documents: int = Field(
        10_000, ge=1, description="Largest number of documents accepted in one documents/batch request."
    )
    max_request_bytes: int = Field(
        256 * 1024 * 1024, ge=1024, description="Largest request body accepted, in bytes."
    )
    embed_batch_size: int = Field(
        16, ge=1, le=4096, description="Texts embedded per model call during ingest."
    )
    embed_max_tokens: int = Field(
        256,
        ge=8,
        le=512,
        description="Token limit per text for the MiniLM embedder (longer text is truncated).",
    )
    embed_threads: int = Field(
        0, ge=0, description="onnxruntime intra-op threads for embedding (0 = one per core)."
    )
    sqlite_busy_timeout_ms: int = Field(
        30_000, ge=0, description="How long a SQLite connection waits for a lock before failing."
    )
    record_executions: bool = Field(
        True,
        description="Store a record of every execution (turn off only to measure the cost of recording).",
    )
    retain_documents_last: int | None = Field(
        None,
        ge=0,
        description="Keep the returned documents of only the newest N execution records (0: none).",
    )
    retain_documents_days: float | None = Field(
        None, ge=0, description="Keep the returned documents of execution records for D days (0: none)."
    )
    hnsw_threshold: int = Field(
        20_000,
        ge=1,
        description="A vector feature with at least this many vectors is searched through an HNSW index; "
        "below it, exactly (numpy).",
    )
    hnsw_m: int = Field(32, ge=4, le=128, description="HNSW graph degree M (links per node).")
    hnsw_ef_construction: int = Field(64, ge=8, le=1024, description="HNSW efConstruction (build effort).")
    hnsw_ef_search: int = Field(
        96, ge=8, le=4096, description="HNSW efSearch (candidate list size per query; at least top_k)."
    )
    exact_filter_max: float = Field(
        0.02,
        ge=0,
        description="A filtered vector search whose filter passes at most this share of the vectors "
        "(or 2,000 of them, whichever is larger) is done exactly over the passing ones.",
    )
    optimizer_enabled: bool = Field(
        True,
        description="Rewrite pipelines before running them with rules that keep results identical (a request "
        "may also send optimize: false).",
    )
    cache_max_entries: int = Field(
        10_000, ge=1, description="Most cached results and stage outputs kept by the storage backend (LRU)."
    )
    cache_max_bytes: int = Field(
        256 * 1024 * 1024, ge=1024, description="Most bytes of cached results and stage outputs kept (LRU)."
    )
    embedding_cache_size: int = Field(
        10_000, ge=0, description="Query embeddings kept in memory (LRU, per model version); 0 turns it off."
    )
    log_level: str = Field("info", description="Log level of the server: debug, info, warning, error.")
    metrics_access: Literal["loopback", "key", "open", "off"] = Field(
        "loopback",
        description="Who may read GET /metrics (Prometheus): loopback (clients on this machine: 127.0.0.1, "
        "::1), key (an API key without namespace limits), open (anyone) or off (404). See docs/METRICS.md.",
    )
    worker_threads: int = Field(
        8,
        ge=1,
        le=256,
        description="Requests whose work runs at the same time (the thread pool of blocking handlers); "
        "more wait on the event loop. Python runs one thread at a time, so a few more than the cores "
        "(to overlap SQLite, numpy and faiss, which release the GIL) do best.",
    )
    blas_threads: int = Field(
        1,
        ge=1,
        le=256,
        description="Threads numpy's BLAS may use per operation in the server (OPENBLAS_NUM_THREADS when "
        "it is not set): requests run side by side already, and idle BLAS threads spin.",
    )
    access_log: bool = Field(
        False,
        description="Log every HTTP request (uvicorn's access log); off by default: it costs ~40 µs a request.",
    )
    ui_session_hours: float = Field(
        8.0,
        gt=0,
        le=720,
        description="How long a sign-in to the execution inspector (/ui) lasts before the key is asked again.",
    )
    rate_limit: str | None = Field(
        None,
        description="The rate limit of every API key without its own (`siftline keys create --rate`), per "
        "server: requests per second, minute or hour, e.g. 20/s, 600/m, 1000/h; unset: no default limit.",
    )
    rate_burst: int | None = Field(
        None,
        ge=1,
        description="Requests a key may make at once under rate_limit (the token bucket's size); unset: the "
        "number in rate_limit (20 for 20/s).",
    )

    @field_validator("rate_limit")
    @classmethod
    def _rate_shape(cls, value: str | None) -> str | None:
        from siftline.models import UNLIMITED_WORDS, Rate

        if value is None or not value.strip() or value.strip().lower() in UNLIMITED_WORDS:
            return None
        Rate.parse(value)  # raises ValueError with what is expected
        return value.strip()

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.lower()
        if value not in {"debug", "info", "warning", "error", "critical"}:
            raise ValueError("must be one of debug, info, warning, error, critical")
        return value

    @field_validator("bootstrap_key")
    @classmethod
    def _key_shape(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith("sk_") and len(value) >= 20):
            raise ValueError("must look like sk_live_… or sk_test_… and be at least 20 characters")
        return value

    @model_validator(mode="after")
    def _postgres_needs_a_url(self) -> Settings:
        if self.storage == "postgres" and not self.postgres_url:
            raise ValueError(
                "SIFTLINE_STORAGE=postgres needs SIFTLINE_POSTGRES_URL (postgresql://user:password@host:5432/db)"
            )
        return self

    @model_validator(mode="after")
    def _burst_needs_a_rate(self) -> Settings:
        if self.rate_burst is not None and self.rate_limit is None:
            raise ValueError("SIFTLINE_RATE_BURST needs SIFTLINE_RATE_LIMIT (e.g. 20/s)")
        return self

    @property
    def default_rate(self) -> Rate | None:
        """The parsed ``rate_limit`` with its burst, or None."""
        from siftline.models import Rate

        return Rate.parse(self.rate_limit, self.rate_burst) if self.rate_limit else None

    @property
    def database_path(self) -> Path:
        return self.data_dir / "siftline.db"

    @property
    def vectors_dir(self) -> Path:
        return self.data_dir / "vectors"


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment plus explicit overrides; a bad value raises ConfigError."""
    from pydantic import ValidationError as PydanticValidationError

    from siftline.errors import ConfigError

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except PydanticValidationError as exc:
        problems = "; ".join(
            (f"SIFTLINE_{'_'.join(str(p) for p in err['loc']).upper()}: " if err["loc"] else "")
            + str(err["msg"]).removeprefix("Value error, ")
            for err in exc.errors()
        )
        raise ConfigError(f"Invalid settings: {problems}") from exc
