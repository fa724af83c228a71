"""Fixtures shared by the store contracts: a storage and two namespaces in it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from siftline.models import Namespace
from siftline.storage.base import Storage
from siftline.testing.contract import new_namespace


class NamespacedContract:
    """A subclass provides ``open_storage`` (a callable returning a new Storage over one persistent
    location); tests get ``storage`` and two namespaces, ``ns`` and ``other_ns``."""

    @pytest.fixture
    def storage(self, open_storage: Callable[[], Storage]) -> Storage:
        return open_storage()

    @pytest.fixture
    def ns(self, storage: Storage) -> Namespace:
        return new_namespace(storage, "alpha")

    @pytest.fixture
    def other_ns(self, storage: Storage) -> Namespace:
        return new_namespace(storage, "beta")
