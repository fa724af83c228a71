"""Small helpers for tests (importable as `helpers`: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from fastapi.testclient import TestClient

from siftline.api.app import create_app
from siftline.config import Settings
from siftline.features.embedder import TextEmbedder
from siftline.service.container import Services

ADMIN_KEY = "sk_test_admin_0123456789abcdefghijklmnop"


def settings_for(data_dir: Path, **overrides: Any) -> Settings:
    """Settings of a test server: its own data directory, the admin key bootstrapped, small batches.

    With ``SIFTLINE_TEST_STORAGE=postgres`` in the environment, the storage is a fresh database of a local
    PostgreSQL started once for the session (``tests/postgres_session.py``): the API suites run on it."""
    if os.environ.get("SIFTLINE_TEST_STORAGE") == "postgres" and "storage" not in overrides:
        from postgres_session import database_url

        overrides = {"storage": "postgres", "postgres_url": database_url(str(data_dir)), "postgres_pool_size": 4,
                     **overrides}  # fmt: skip
    return Settings(
        **{"data_dir": data_dir, "bootstrap_key": ADMIN_KEY, "max_batch_documents": 500, **overrides}
    )


@contextmanager
def served(settings: Settings, embedder: TextEmbedder) -> Iterator[tuple[TestClient, Services]]:
    """An in-process client (admin key in its default headers) over real SQLite and the real model."""
    services = Services.open(settings, embedder)
    try:
        with TestClient(create_app(settings, services), raise_server_exceptions=False) as client:
            client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
            yield client, services
    finally:
        services.close()


def bearer(secret: str, namespace: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {secret}"}
    if namespace is not None:
        headers["X-Namespace"] = namespace
    return headers


TEXT_COLLECTION = {
    "collection_name": "papers",
    "feature_extractor": {
        "feature_extractor_name": "text_extractor",
        "version": "v1",
        "input_mappings": {"text": ["title", "text"]},
    },
    "vector_configs": [{"name": "emb", "dimension": 4, "metric": "cosine"}],
    "payload_indexes": [{"field_name": "category", "type": "keyword"}],
}


DENSE = "mixpeek://text_extractor@v1/all_minilm_l6_v2"
BM25 = "mixpeek://text_extractor@v1/bm25"
PETS = [
    {"document_id": "cat", "text": "A cat sat on the mat by the window", "kind": "pet", "year": 2021},
    {"document_id": "kitten", "text": "The kitten rested on the rug all afternoon", "kind": "pet", "year": 2019},
    {"document_id": "dog", "text": "A dog chased the ball across the park", "kind": "pet", "year": 2023},
    {"document_id": "stocks", "text": "Stock markets fell sharply on Monday", "kind": "finance", "year": 2022},
    {"document_id": "rates", "text": "The central bank raised interest rates", "kind": "finance", "year": 2020},
    {"document_id": "cats-book", "text": "A book about cats and their sleeping habits", "kind": "book", "year": 2018},
]  # fmt: skip
# After a search: keep the pets, newest first, the top two (over PETS: dog, cat).
PETS_TAIL_STAGES = [
    {
        "stage_name": "pets",
        "stage_type": "filter",
        "config": {
            "stage_id": "attribute_filter",
            "parameters": {"field": "kind", "operator": "eq", "value": "pet"},
        },
    },
    {
        "stage_name": "newest",
        "stage_type": "sort",
        "config": {"stage_id": "sort_attribute", "parameters": {"field": "year", "direction": "desc"}},
    },
    {
        "stage_name": "top2",
        "stage_type": "reduce",
        "config": {"stage_id": "limit", "parameters": {"limit": 2}},
    },
]


def tiny_cross_encoder() -> ModuleType:
    """tests/pipeline/stages/tiny_cross_encoder.py (builds a counting cross-encoder), loaded by path."""
    if "tiny_cross_encoder" in sys.modules:
        return sys.modules["tiny_cross_encoder"]
    path = Path(__file__).parent / "pipeline" / "stages" / "tiny_cross_encoder.py"
    spec = importlib.util.spec_from_file_location("tiny_cross_encoder", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tiny_cross_encoder"] = module
    spec.loader.exec_module(module)
    return module
