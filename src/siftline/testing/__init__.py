"""Test support shipped with Siftline: the storage contract every backend must pass."""

from siftline.testing.cache_contract import CacheStoreContract
from siftline.testing.contract import (
    FEATURES,
    OpenStorage,
    StorageContract,
    assert_same_ranking,
    brute_force,
    fresh,
    make_write,
    new_collection,
    new_namespace,
    vectors_of,
)

__all__ = [
    "FEATURES",
    "CacheStoreContract",
    "OpenStorage",
    "StorageContract",
    "assert_same_ranking",
    "brute_force",
    "fresh",
    "make_write",
    "new_collection",
    "new_namespace",
    "vectors_of",
]
