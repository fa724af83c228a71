"""Shared fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import mixpeek
import pytest

from siftline.testing.server import Server


@pytest.fixture(scope="module")
def api_client(server: tuple[Server, str]) -> Iterator[mixpeek.ApiClient]:
    """The official SDK's client on the module's real server (its ``server`` fixture), namespace default."""
    srv, key = server
    with mixpeek.ApiClient(mixpeek.Configuration(host=srv.url, access_token=key)) as client:
        client.set_default_header("X-Namespace", "default")
        yield client
