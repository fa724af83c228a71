"""Shared fixtures: real SQLite in a temporary directory, the real embedding model, an in-process client.

The model loads once per session (``embedder``); each test gets its own data directory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from helpers import ADMIN_KEY, settings_for
from siftline.api.app import create_app
from siftline.config import Settings
from siftline.features.embedder import TextEmbedder
from siftline.service import keys, namespaces
from siftline.service.container import Services


@pytest.fixture(scope="session")
def embedder() -> TextEmbedder:
    model = TextEmbedder()
    model.warm_up()
    return model


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_for(tmp_path / "data")


@pytest.fixture
def services(settings: Settings, embedder: TextEmbedder) -> Iterator[Services]:
    svc = Services.open(settings, embedder)
    yield svc
    svc.close()


@pytest.fixture
def client(settings: Settings, services: Services) -> Iterator[TestClient]:
    """An in-process client whose default headers carry the bootstrap (unlimited) key."""
    with TestClient(create_app(settings, services), raise_server_exceptions=False) as test_client:
        test_client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        yield test_client


@pytest.fixture
def make_key(client: TestClient, services: Services) -> Callable[..., str]:
    """``make_key("ns-a")`` → a secret limited to those namespaces (created when missing); no args → unlimited."""

    def make(*namespace_names: str) -> str:
        ids = [namespaces.ensure_namespace(services.storage, n).namespace_id for n in namespace_names] or None
        _, secret = keys.create_key(services.storage, "test", ids)
        return secret

    return make


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With SIFTLINE_TEST_STORAGE=postgres, tests marked sqlite_only (they read the embedded backend's
    own files or index fields) are skipped."""
    import os

    if os.environ.get("SIFTLINE_TEST_STORAGE") != "postgres":
        return
    skip = pytest.mark.skip(reason="inspects the embedded backend's own files or index")
    for item in items:
        if "sqlite_only" in item.keywords:
            item.add_marker(skip)
