"""The cache, storage-side filtering and write-version contract: one pytest suite every backend must pass.

Subclass :class:`CacheStoreContract` in a test module and provide the fixture ``open_storage`` (as for
:class:`~siftline.testing.contract.StorageContract`: a callable returning a *new* Storage over one
persistent location, closing every instance it opened at teardown). The suite covers

* ``CacheStore``: entries round-trip, never come back expired, stay within ``max_entries`` and
  ``max_bytes`` (size = ``len(value) + len(cache_key)``) by evicting the least recently used first,
  expired entries are purged on put, an entry larger than ``max_bytes`` is not stored, ``cache_clear``
  and ``cache_stats`` count right, entries survive a restart and are shared between instances, and
  deleting a namespace or a retriever drops its entries. Reads may mark an entry used only once per
  5 s, so every ``now`` the suite passes is more than 5 s after the previous one.
* ``match_documents`` and ``field_values``: exactly what ``filters.evaluate`` and ``filters.get_path``
  say over the stored documents (``Document.as_dict()``), property-tested on random documents,
  payload indexes and filters.
* ``write_version``: every collection write, a collection update included, strictly raises it.

The suite only calls the Protocol methods of ``siftline.storage.base``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from siftline.filters import MISSING, And, Node, evaluate, get_path, parse_filter
from siftline.ids import new_id
from siftline.models import CacheEntry, Collection, DocumentWrite, Namespace, PayloadIndex, Retriever, utcnow
from siftline.storage.base import Storage
from siftline.testing.contract import (
    CONTRACT_CHECKS,
    EMB_COSINE,
    OpenStorage,
    assert_same_ranking,
    brute_force,
    fresh,
    make_write,
    new_collection,
    vectors_of,
)
from siftline.testing.filter_strategies import BOOL, D4, FIELDS, STORABLE, draw_fields, pick, pools_of
from siftline.testing.namespaced import NamespacedContract

Kind = Literal["result", "stage"]
T0 = 1_700_000_000.0  # Unix seconds; every step of the suite's clock is a multiple of 0.5 s (exact floats)
UNBOUNDED = 1 << 40

# ---------------------------------------------------------------------------------------------- cache helpers


def make_entry(
    namespace: Namespace | str,
    key: str,
    value: bytes | int = b"value",
    *,
    kind: Kind = "result",
    created_at: float = T0,
    ttl: float | None = None,
    retriever_id: str | None = None,
    execution_id: str | None = None,
) -> CacheEntry:
    """An entry; an int ``value`` is a value of that many bytes (so that the entry's size is known)."""
    data = value if isinstance(value, bytes) else (f"{key}|".encode() * (value + 1))[:value]
    return CacheEntry(
        cache_key=key,
        namespace_id=namespace if isinstance(namespace, str) else namespace.namespace_id,
        kind=kind,
        value=data,
        created_at=created_at,
        expires_at=None if ttl is None else created_at + ttl,
        retriever_id=retriever_id,
        execution_id=execution_id,
    )


def new_retriever(storage: Storage, namespace: Namespace, name: str) -> Retriever:
    """Create and return a retriever of no stages (its id is what cache entries name)."""
    now = utcnow()
    retriever = Retriever(new_id("ret"), namespace.namespace_id, name, None, (), (), {}, {}, {"enabled": True},
                          (), {}, now, now)  # fmt: skip
    storage.create_retriever(retriever)
    return retriever


def size_of(entry: CacheEntry) -> int:
    """What an entry counts against ``max_bytes``."""
    return len(entry.value) + len(entry.cache_key)


def put(
    storage: Storage, *entries: CacheEntry, max_entries: int = UNBOUNDED, max_bytes: int = UNBOUNDED
) -> None:
    for entry in entries:
        storage.cache_put(entry, max_entries, max_bytes)


def present(storage: Storage, keys: Iterable[str], now: float) -> set[str]:
    """The keys ``cache_get`` returns an entry for at ``now`` (this marks them used)."""
    return {k for k in keys if storage.cache_get(k, now) is not None}


# ---------------------------------------------------------------------------------------------- cache model


@dataclass(frozen=True)
class CacheOp:
    """One step of a random cache script; ``pause`` adds half-seconds to the 5.5 s between steps. A
    ``clear`` with ``key`` 0 clears everything, else ``namespace`` (of retriever ``retriever`` unless 0)."""

    action: str  # put | get | clear
    key: int
    namespace: int
    retriever: int
    kind: Kind
    length: int
    ttl: int | None
    pause: int


cache_ops = st.builds(
    CacheOp,
    action=st.sampled_from(("put",) * 4 + ("get",) * 4 + ("clear",)),
    key=st.integers(0, 6),
    namespace=st.integers(0, 1),
    retriever=st.integers(0, 2),
    kind=st.sampled_from(("result", "stage")),
    length=st.integers(4, 70),
    ttl=st.none() | st.integers(1, 45),
    pause=st.integers(0, 20),
)


@dataclass
class CacheModel:
    """What a cache bounded to ``max_entries`` / ``max_bytes`` must hold: exact LRU (every read touches,
    the clock moving more than 5 s per step), expired entries purged on put."""

    max_entries: int
    max_bytes: int
    entries: dict[str, CacheEntry] = field(default_factory=dict)
    last_used: dict[str, float] = field(default_factory=dict)

    def put(self, entry: CacheEntry) -> None:
        now = entry.created_at
        self.entries[entry.cache_key] = entry
        self.last_used[entry.cache_key] = now
        for key in [k for k, e in self.entries.items() if not self.live(e, now)]:
            self.drop(key)
        while len(self.entries) > self.max_entries or self.bytes() > self.max_bytes:
            self.drop(min(self.entries, key=self.last_used.__getitem__))

    def get(self, key: str, now: float) -> CacheEntry | None:
        entry = self.entries.get(key)
        if entry is None or not self.live(entry, now):
            return None
        self.last_used[key] = now
        return entry

    def clear(self, namespace_id: str | None, retriever_id: str | None, now: float) -> tuple[int, int]:
        """Drop the matching entries; how many of them are live, and how many in all (expired ones not
        purged yet included: a backend may or may not have dropped those already)."""
        doomed = [
            k
            for k, e in self.entries.items()
            if namespace_id is None
            or (e.namespace_id == namespace_id and (retriever_id is None or e.retriever_id == retriever_id))
        ]
        live = sum(self.live(self.entries[k], now) for k in doomed)
        for key in doomed:
            self.drop(key)
        return live, len(doomed)

    def drop(self, key: str) -> None:
        del self.entries[key], self.last_used[key]

    def bytes(self) -> int:
        return sum(size_of(e) for e in self.entries.values())

    def stats(self) -> tuple[int, int, dict[str, int]]:
        kinds: dict[str, int] = {}
        for entry in self.entries.values():
            kinds[entry.kind] = kinds.get(entry.kind, 0) + 1
        return len(self.entries), self.bytes(), kinds

    @staticmethod
    def live(entry: CacheEntry, now: float) -> bool:
        return entry.expires_at is None or entry.expires_at > now


# ---------------------------------------------------------------------------------------------- documents
# Random documents and filters come from siftline.testing.filter_strategies (STORABLE: strings hold no NUL
# and integers fit in 64 bits, the limits filter_sql documents for SQLite; field_values of integers past
# 64 bits has an example test of its own).

VALUE_FIELDS = [f for f in FIELDS if f != "_internal"]  # field_values reads paths, not the whole _internal
INDEXABLE = ["a", "b", "tags", "meta", "meta.x", "meta.y", "c d", "é", "it's", "nope"]


def draw_write(draw: st.DrawFn, document_id: str) -> DocumentWrite:
    """A document of random user fields (some missing) and ``_internal`` fields, without vectors."""
    payload, internal = draw_fields(draw)
    return DocumentWrite(document_id, payload, internal, {}, {})


def json_form(value: Any) -> Any:
    """A form that tells apart what ``==`` conflates: bools and numbers, 1 and 1.0, 0.0 and -0.0."""
    if value is MISSING:
        return ("MISSING",)
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else value.hex())
    if isinstance(value, list):
        return ("list", [json_form(v) for v in value])
    if isinstance(value, dict):
        return ("dict", {k: json_form(v) for k, v in value.items()})
    return (type(value).__name__, value)


@dataclass
class DocumentPlan:
    """Random documents for a collection with random payload indexes: a first write, a second one
    replacing some and adding one, a deletion, another collection holding the same ids with other
    documents, and the ids to ask for (most stored ones, a deleted one, unknown ones, the other's)."""

    indexed: tuple[PayloadIndex, ...]
    first: list[DocumentWrite]
    second: list[DocumentWrite]
    deleted: list[str]
    theirs: list[DocumentWrite]
    asked: list[str]


@st.composite
def document_plans(draw: st.DrawFn) -> DocumentPlan:
    indexed = tuple(PayloadIndex(f, "keyword") for f in INDEXABLE if not draw(D4))
    doc_ids = [f"doc-{i}" for i in range(draw(st.integers(2, 8)))]
    first = [draw_write(draw, i) for i in doc_ids]
    second = [draw_write(draw, i) for i in [*doc_ids, "doc-late"] if not draw(D4)] if draw(BOOL) else []
    doc_ids += [w.document_id for w in second if w.document_id not in doc_ids]
    deleted = [pick(draw, doc_ids)] if draw(BOOL) else []
    theirs = [draw_write(draw, i) for i in [*doc_ids, "only-other"]]
    candidates = [i for i in doc_ids if draw(D4)] + ["missing", "only-other", pick(draw, doc_ids)]
    return DocumentPlan(indexed, first, second, deleted, theirs, draw(st.permutations(candidates)))


@st.composite
def filters(draw: st.DrawFn, pools: Mapping[str, list[Any]]) -> dict[str, Any]:
    return STORABLE.draw_filter(draw, pools)


def apply_plan(
    storage: Storage, namespace: Namespace, plan: DocumentPlan
) -> tuple[Collection, dict[str, Any]]:
    """Write the plan; the collection as stored now and its documents' wire forms (``as_dict``) by id."""
    collection = new_collection(storage, namespace, new_id("col")[4:], (), plan.indexed)
    other = new_collection(storage, namespace, new_id("col")[4:], (), plan.indexed)
    storage.put_documents(collection, plan.first, replace=False)
    if plan.second:
        storage.put_documents(fresh(storage, collection), plan.second, replace=True)
    if plan.deleted:
        storage.delete_documents(fresh(storage, collection), plan.deleted)
    storage.put_documents(other, plan.theirs, replace=False)
    current = fresh(storage, collection)
    asked = [w.document_id for w in plan.theirs]
    return current, {d.document_id: d.as_dict() for d in storage.get_documents(current, asked)}


def flt(obj: Any) -> Node:
    node = parse_filter(obj)
    assert node is not None
    return node


# ---------------------------------------------------------------------------------------------- the suite


class CacheStoreContract(NamespacedContract):
    """Every backend's CacheStore, match_documents, field_values and write_version bumps must pass
    these; a subclass provides ``open_storage`` (a callable returning a new Storage over one persistent
    location). Tests get ``storage`` and two namespaces, ``ns`` and ``other_ns``."""

    # -- cache: what is read back ----------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("kind", "ttl", "retriever_id", "execution_id"),
        [
            ("result", None, "ret_aaaa", "exec_aaaa"),
            ("stage", 60.0, None, None),
            ("result", 0.5, None, "exec_b"),
        ],
    )
    def test_a_put_entry_is_read_back_with_every_field(
        self,
        storage: Storage,
        ns: Namespace,
        kind: Kind,
        ttl: float | None,
        retriever_id: str | None,
        execution_id: str | None,
    ) -> None:
        entry = make_entry(
            ns, "key-ü", b"\x00\xffopaque bytes\x00", kind=kind, created_at=T0 + 0.25, ttl=ttl,
            retriever_id=retriever_id, execution_id=execution_id,
        )  # fmt: skip
        put(storage, entry)
        assert storage.cache_get("key-ü", T0 + 0.25) == entry

    def test_an_empty_value_is_stored_as_empty_bytes(self, storage: Storage, ns: Namespace) -> None:
        entry = make_entry(ns, "empty", b"")
        put(storage, entry)
        found = storage.cache_get("empty", T0)
        assert found == entry and found is not None and found.value == b""

    def test_an_unknown_key_is_none(self, storage: Storage, ns: Namespace) -> None:
        put(storage, make_entry(ns, "known"))
        assert storage.cache_get("unknown", T0) is None
        assert storage.cache_get("KNOWN", T0) is None

    def test_an_entry_without_expiry_is_kept_until_evicted(self, storage: Storage, ns: Namespace) -> None:
        entry = make_entry(ns, "forever", ttl=None)
        put(storage, entry)
        put(storage, make_entry(ns, "later", created_at=T0 + 86_400 * 365))  # a put purges expired entries
        assert storage.cache_get("forever", T0 + 86_400 * 365 * 10) == entry

    def test_an_entry_is_never_returned_once_expired(self, storage: Storage, ns: Namespace) -> None:
        entry = make_entry(ns, "brief", ttl=10)  # expires_at = T0 + 10
        put(storage, entry)
        assert storage.cache_get("brief", T0 + 9.5) == entry
        assert storage.cache_get("brief", T0 + 10) is None  # expires_at <= now: expired
        assert storage.cache_get("brief", T0 + 20) is None
        assert storage.cache_get("brief", T0 + 10) is None  # a read of the expired entry revived nothing

    def test_putting_a_key_again_replaces_its_entry(self, storage: Storage, ns: Namespace) -> None:
        put(storage, make_entry(ns, "key", b"old value", kind="result", ttl=None, execution_id="exec_1"))
        new = make_entry(ns, "key", b"new", kind="stage", created_at=T0 + 6, ttl=30, execution_id="exec_2")
        put(storage, new)
        assert storage.cache_get("key", T0 + 12) == new
        stats = storage.cache_stats()
        assert (stats["entries"], stats["bytes"], stats["by_kind"]) == (1, size_of(new), {"stage": 1})
        assert storage.cache_get("key", T0 + 36) is None  # the new expiry applies

    # -- cache: bounds ----------------------------------------------------------------------------------

    def test_the_least_recently_used_entry_is_evicted_past_max_entries(
        self, storage: Storage, ns: Namespace
    ) -> None:
        for i, key in enumerate(("a", "b", "c")):
            put(storage, make_entry(ns, key, 20, created_at=T0 + 10 * i), max_entries=3)
        assert storage.cache_get("a", T0 + 30) is not None  # "a" is now used more recently than "b"
        put(storage, make_entry(ns, "d", 20, created_at=T0 + 40), max_entries=3)
        assert present(storage, "abcd", T0 + 50) == {"a", "c", "d"}
        assert storage.cache_stats()["entries"] == 3

    def test_least_recently_used_entries_are_evicted_until_within_max_bytes(
        self, storage: Storage, ns: Namespace
    ) -> None:
        for i, key in enumerate(("a", "b", "c")):  # 100 bytes each
            put(storage, make_entry(ns, key, 99, created_at=T0 + 10 * i), max_bytes=350)
        assert storage.cache_get("a", T0 + 30) is not None  # used order now: b, c, a
        put(storage, make_entry(ns, "d", 99, created_at=T0 + 40), max_bytes=350)
        assert storage.cache_stats()["bytes"] == 300  # exactly "b" went: no more than needed
        put(storage, make_entry(ns, "e", 249, created_at=T0 + 50), max_bytes=350)
        assert storage.cache_stats()["bytes"] == 350  # "c" then "a" went (550 -> 450 -> 350)
        assert present(storage, "abcde", T0 + 60) == {"d", "e"}

    def test_the_size_of_an_entry_counts_its_key_and_its_value(self, storage: Storage, ns: Namespace) -> None:
        first = make_entry(ns, "k" * 40, 40)
        put(storage, first, max_bytes=100)
        assert storage.cache_stats()["bytes"] == 80
        put(storage, make_entry(ns, "j" * 40, 20, created_at=T0 + 10), max_bytes=100)  # 80 + 60 > 100
        assert present(storage, ("k" * 40, "j" * 40), T0 + 20) == {"j" * 40}
        assert storage.cache_stats()["bytes"] == 60

    def test_an_entry_larger_than_max_bytes_is_not_stored_and_evicts_nothing(
        self, storage: Storage, ns: Namespace
    ) -> None:
        small = make_entry(ns, "small", 45)  # 50 bytes
        put(storage, small, max_bytes=100)
        put(storage, make_entry(ns, "huge", 97, created_at=T0 + 10), max_bytes=100)  # 4 + 97 = 101 bytes
        assert storage.cache_get("huge", T0 + 20) is None
        assert storage.cache_get("small", T0 + 20) == small
        assert storage.cache_stats()["entries"] == 1
        exact = make_entry(ns, "exact", 95, created_at=T0 + 30)  # 5 + 95 = 100 bytes: fits, alone
        put(storage, exact, max_bytes=100)
        assert present(storage, ("small", "exact"), T0 + 40) == {"exact"}

    def test_expired_entries_are_purged_by_a_put_whatever_the_bounds(
        self, storage: Storage, ns: Namespace
    ) -> None:
        put(storage, make_entry(ns, "brief", 10, ttl=10), make_entry(ns, "kept", 10, created_at=T0 + 1))
        put(storage, make_entry(ns, "also-brief", 10, created_at=T0 + 2, ttl=100))
        put(storage, make_entry(ns, "new", 10, created_at=T0 + 20))
        stats = storage.cache_stats()
        assert stats["entries"] == 3 and stats["bytes"] == sum(
            len(k) + 10 for k in ("kept", "also-brief", "new")
        )
        assert storage.cache_get("brief", T0 + 5) is None  # gone, not merely hidden at T0 + 20

    def test_an_entry_put_with_a_past_expiry_is_never_returned(self, storage: Storage, ns: Namespace) -> None:
        put(storage, make_entry(ns, "stale", created_at=T0, ttl=0))
        assert storage.cache_get("stale", T0) is None
        assert storage.cache_stats()["entries"] == 0

    # -- cache: clear and stats -------------------------------------------------------------------------

    def test_cache_stats_count_entries_bytes_and_kinds(self, storage: Storage, ns: Namespace) -> None:
        stats = storage.cache_stats()
        assert (stats["entries"], stats["bytes"], stats["by_kind"]) == (0, 0, {})
        entries = [
            make_entry(ns, "r1", 10, kind="result"),
            make_entry(ns, "r2", 30, kind="result"),
            make_entry(ns, "s1", 7, kind="stage"),
        ]
        put(storage, *entries)
        stats = storage.cache_stats()
        assert stats["entries"] == 3 and stats["bytes"] == sum(size_of(e) for e in entries)
        assert stats["by_kind"] == {"result": 2, "stage": 1}

    def test_cache_clear_of_a_namespace_drops_its_entries_only(
        self, storage: Storage, ns: Namespace, other_ns: Namespace
    ) -> None:
        mine = [make_entry(ns, "m1"), make_entry(ns, "m2", retriever_id="ret_a", kind="stage")]
        theirs = make_entry(other_ns, "t1", retriever_id="ret_a")
        put(storage, *mine, theirs)
        assert storage.cache_clear(ns.namespace_id) == 2
        assert present(storage, ("m1", "m2", "t1"), T0) == {"t1"}
        assert storage.cache_clear(ns.namespace_id) == 0
        assert storage.cache_clear("ns_doesnotexist") == 0
        assert storage.cache_stats()["entries"] == 1

    def test_cache_clear_of_a_retriever_drops_its_entries_only(
        self, storage: Storage, ns: Namespace, other_ns: Namespace
    ) -> None:
        put(
            storage,
            make_entry(ns, "a1", retriever_id="ret_a"),
            make_entry(ns, "a2", retriever_id="ret_a", kind="stage"),
            make_entry(ns, "b1", retriever_id="ret_b"),
            make_entry(ns, "adhoc"),
            make_entry(other_ns, "elsewhere", retriever_id="ret_a"),
        )
        assert storage.cache_clear(ns.namespace_id, "ret_a") == 2
        assert present(storage, ("a1", "a2", "b1", "adhoc", "elsewhere"), T0) == {"b1", "adhoc", "elsewhere"}

    def test_cache_clear_without_arguments_drops_everything(
        self, storage: Storage, ns: Namespace, other_ns: Namespace
    ) -> None:
        put(storage, make_entry(ns, "a"), make_entry(other_ns, "b", kind="stage"), make_entry(ns, "c", ttl=5))
        assert storage.cache_clear() == 3
        assert present(storage, "abc", T0) == set()
        stats = storage.cache_stats()
        assert (stats["entries"], stats["bytes"], stats["by_kind"]) == (0, 0, {})

    # -- cache: lifetime ---------------------------------------------------------------------------------

    def test_entries_and_their_use_survive_closing_and_reopening(
        self, open_storage: OpenStorage, storage: Storage, ns: Namespace
    ) -> None:
        a = make_entry(ns, "a", 20)
        b = make_entry(ns, "b", 20, kind="stage", created_at=T0 + 10, ttl=1000, retriever_id="ret_a",
                       execution_id="exec_a")  # fmt: skip
        put(storage, a, b)
        assert storage.cache_get("a", T0 + 20) == a  # used after "b" was put
        before = storage.cache_stats()
        storage.close()

        reopened = open_storage()
        assert reopened.cache_stats() == before
        put(reopened, make_entry(ns, "c", 20, created_at=T0 + 30), max_entries=2)
        assert reopened.cache_get("b", T0 + 40) is None  # the least recently used, by the use before closing
        assert reopened.cache_get("a", T0 + 40) == a

    def test_an_entry_put_by_one_instance_is_read_by_another(
        self, open_storage: OpenStorage, storage: Storage, ns: Namespace
    ) -> None:
        other = open_storage()
        mine, theirs = make_entry(ns, "mine", b"1"), make_entry(ns, "theirs", b"2", created_at=T0 + 1)
        put(storage, mine)
        put(other, theirs)
        assert other.cache_get("mine", T0 + 2) == mine
        assert storage.cache_get("theirs", T0 + 2) == theirs
        assert other.cache_clear(ns.namespace_id) == 2
        assert storage.cache_get("mine", T0 + 3) is None

    def test_deleting_a_namespace_drops_its_entries_only(
        self, storage: Storage, ns: Namespace, other_ns: Namespace
    ) -> None:
        kept = make_entry(other_ns, "theirs", kind="stage")
        put(storage, make_entry(ns, "mine"), make_entry(ns, "mine-too", retriever_id="ret_a"), kept)
        assert storage.delete_namespace(ns.namespace_id) is True
        assert present(storage, ("mine", "mine-too"), T0) == set()
        assert storage.cache_get("theirs", T0) == kept
        stats = storage.cache_stats()
        assert (stats["entries"], stats["bytes"], stats["by_kind"]) == (1, size_of(kept), {"stage": 1})

    def test_deleting_a_retriever_drops_its_entries_only(
        self, storage: Storage, ns: Namespace, other_ns: Namespace
    ) -> None:
        doomed, kept = new_retriever(storage, ns, "doomed"), new_retriever(storage, ns, "kept")
        rid = doomed.retriever_id
        put(
            storage,
            make_entry(ns, "d-result", retriever_id=rid, execution_id="exec_1"),
            make_entry(ns, "d-stage", retriever_id=rid, kind="stage"),
            make_entry(ns, "k-result", retriever_id=kept.retriever_id),
            make_entry(ns, "adhoc"),
        )
        assert storage.delete_retriever(other_ns.namespace_id, rid) is False  # not there: nothing dropped
        assert present(storage, ("d-result", "d-stage"), T0) == {"d-result", "d-stage"}

        assert storage.delete_retriever(ns.namespace_id, rid) is True
        assert present(storage, ("d-result", "d-stage", "k-result", "adhoc"), T0) == {"k-result", "adhoc"}
        assert storage.cache_stats()["entries"] == 2

    # -- cache: random scripts ----------------------------------------------------------------------------

    @given(
        max_entries=st.integers(1, 6),
        max_bytes=st.integers(12, 220),
        ops=st.lists(cache_ops, min_size=10, max_size=60),
    )
    @hypothesis_settings(max_examples=50, deadline=None, suppress_health_check=CONTRACT_CHECKS)
    def test_random_puts_and_gets_behave_like_a_bounded_lru_cache(
        self,
        storage: Storage,
        ns: Namespace,
        other_ns: Namespace,
        max_entries: int,
        max_bytes: int,
        ops: list[CacheOp],
    ) -> None:
        storage.cache_clear()  # the examples share one storage
        namespaces = (ns.namespace_id, other_ns.namespace_id)
        retrievers = (None, "ret_a", "ret_b")
        model = CacheModel(max_entries, max_bytes)
        now = T0
        for step, op in enumerate(ops):
            now += 5.5 + op.pause / 2  # past the 5 s a read may go without marking the entry used
            key = f"key-{op.key}"
            if op.action == "put":
                length = min(op.length, max_bytes - len(key))  # fits (larger ones: an example test)
                value = f"#{step}:".encode().ljust(length, b"v")  # unique among the script's values
                entry = make_entry(
                    namespaces[op.namespace], key, value, kind=op.kind, created_at=now, ttl=op.ttl,
                    retriever_id=retrievers[op.retriever], execution_id=f"exec_{step}",
                )  # fmt: skip
                storage.cache_put(entry, max_entries, max_bytes)
                model.put(entry)
                stats = storage.cache_stats()
                assert (stats["entries"], stats["bytes"], stats["by_kind"]) == model.stats(), step
            elif op.action == "get":
                got = storage.cache_get(key, now)
                assert got is None or got.expires_at is None or got.expires_at > now, f"expired at {step}"
                assert got == model.get(key, now), step
            else:
                scope = None if op.key == 0 else namespaces[op.namespace]
                retriever = retrievers[op.retriever] if scope is not None else None
                live, total = model.clear(scope, retriever, now)
                assert live <= storage.cache_clear(scope, retriever) <= total, step
            stats = storage.cache_stats()
            assert stats["entries"] <= max_entries and stats["bytes"] <= max_bytes, step

    # -- write_version ----------------------------------------------------------------------------------

    def test_every_write_to_a_collection_strictly_raises_its_write_version(
        self, open_storage: OpenStorage, storage: Storage, ns: Namespace
    ) -> None:
        collection = new_collection(storage, ns, "versioned", (EMB_COSINE,), ())
        versions = [fresh(storage, collection).write_version]

        def step(label: str) -> None:
            versions.append(fresh(storage, collection).write_version)
            assert versions[-1] > versions[-2], f"{label} left write_version at {versions[-2]}"

        storage.update_collection(replace(fresh(storage, collection), description="patched"))
        step("update_collection (description)")
        storage.put_documents(fresh(storage, collection), [make_write(collection, "d1")], replace=False)
        step("put_documents (insert)")
        storage.put_documents(
            fresh(storage, collection), [make_write(collection, "d1", seed=7)], replace=True
        )
        step("put_documents (replace)")
        storage.delete_documents(fresh(storage, collection), ["d1"])
        step("delete_documents")
        indexed = (PayloadIndex("category", "keyword"),)
        storage.update_collection(replace(fresh(storage, collection), payload_indexes=indexed))
        step("update_collection (payload indexes)")
        storage.update_collection(replace(fresh(storage, collection), metadata={"v": 2}))
        step("update_collection (metadata)")

        other = open_storage()
        assert fresh(other, collection).write_version == versions[-1]
        other.update_collection(replace(fresh(other, collection), collection_name="renamed"))
        step("update_collection by another instance (rename)")

    def test_vector_search_stays_exact_after_a_collection_update(
        self, open_storage: OpenStorage, storage: Storage, ns: Namespace
    ) -> None:
        collection = new_collection(storage, ns, "searched", (EMB_COSINE,), ())
        writes = [make_write(collection, f"d{i:02d}") for i in range(12)]
        storage.put_documents(collection, writes, replace=False)
        query = writes[3].vectors["cos"]
        other = open_storage()
        for instance in (storage, other):  # both load the index
            instance.vector_search(fresh(instance, collection), EMB_COSINE, query, 5)
        storage.update_collection(replace(fresh(storage, collection), description="patched"))
        late = make_write(collection, "late", vectors={"cos": query + 0.3})  # next to d03, not tied
        other.put_documents(fresh(other, collection), [late], replace=False)
        storage.update_collection(replace(fresh(storage, collection), metadata={"v": 2}))
        expected = brute_force(vectors_of([*writes, late], EMB_COSINE), query, "cosine", 20)
        for instance in (storage, other):
            hits = instance.vector_search(fresh(instance, collection), EMB_COSINE, query, 20)
            assert_same_ranking(hits, expected)

    # -- match_documents ----------------------------------------------------------------------------------

    @pytest.fixture
    def docs(self, storage: Storage, ns: Namespace) -> Collection:
        """Four documents (``category``/``year`` indexed) and, in another collection ``other``, documents
        with some of the same ids that would match other filters."""
        indexes = (PayloadIndex("category", "keyword"), PayloadIndex("year", "integer"))
        collection = new_collection(storage, ns, "docs", (EMB_COSINE,), indexes)
        writes = [
            make_write(collection, "a", vectors={}, internal={"source": "crawl", "rank": 1}, category="news",
                       year=2020, tags=["red", "green"], meta={"lang": "en", "scores": [1, 2]}, title="Alpha"),
            make_write(collection, "b", vectors={}, internal={"source": "upload"}, category="blog", year=2021,
                       tags=[], meta={"lang": "fr"}, title=None),
            make_write(collection, "c", vectors={}, internal={"source": "crawl", "rank": 3}, category="News",
                       year=2019.0, tags="red", meta=[{"lang": "en"}], title="Gamma"),
            make_write(collection, "d", vectors={}, internal={}, category="paper"),
        ]  # fmt: skip
        storage.put_documents(collection, writes, replace=False)
        other = new_collection(storage, ns, "other", (EMB_COSINE,), indexes)
        theirs = [
            make_write(
                other, i, vectors={}, internal={"source": "crawl"}, category="news", year=2030, tags="red"
            )
            for i in ("a", "b", "z")
        ]
        storage.put_documents(other, theirs, replace=False)
        return collection

    def _reference(
        self, storage: Storage, collection: Collection, asked: Sequence[str], node: Node
    ) -> set[str]:
        stored = {d.document_id: d.as_dict() for d in storage.get_documents(collection, asked)}
        return {i for i in asked if i in stored and evaluate(node, stored[i])}

    @pytest.mark.parametrize(
        ("filter", "expected"),
        [
            ({"category": "news"}, {"a", "c"}),
            ({"category": "news", "case_sensitive": True}, {"a"}),
            ({"field": "year", "operator": "gte", "value": 2020}, {"a", "b"}),
            ({"field": "year", "operator": "eq", "value": 2019}, {"c"}),
            ({"field": "year", "operator": "ne", "value": 2020}, {"b", "c", "d"}),
            ({"tags": "red"}, {"a", "c"}),
            ({"field": "tags", "operator": "contains", "value": "green"}, {"a"}),
            ({"field": "meta.lang", "value": "en"}, {"a"}),
            ({"field": "meta.scores", "operator": "in", "value": [2, 5]}, {"a"}),
            ({"field": "title", "operator": "is_null", "value": True}, {"b", "d"}),
            ({"field": "title", "operator": "exists", "value": True}, {"a", "c"}),
            ({"NOT": [{"category": "blog"}]}, {"a", "c", "d"}),
            ({"OR": [{"category": "paper"}, {"field": "title", "operator": "starts_with", "value": "al"}]},
             {"a", "d"}),
            ({"AND": []}, {"a", "b", "c", "d"}),
            ({"OR": []}, set()),
        ],
    )  # fmt: skip
    def test_match_documents_returns_the_asked_ids_the_filter_matches(
        self, storage: Storage, docs: Collection, filter: dict[str, Any], expected: set[str]
    ) -> None:
        node = flt(filter)
        asked = ["a", "b", "c", "d"]
        assert storage.match_documents(docs, asked, node) == expected
        assert expected == self._reference(storage, docs, asked, node)
        assert storage.match_documents(docs, ["d", "c"], node) == expected & {"c", "d"}

    def test_match_documents_leaves_out_missing_ids_and_other_collections_documents(
        self, storage: Storage, docs: Collection
    ) -> None:
        node = flt({"category": "news"})  # "b" and "z" match in the other collection only
        assert storage.match_documents(docs, ["a", "b", "z", "missing", "a"], node) == {"a"}
        assert storage.match_documents(docs, ["b", "z"], node) == set()
        assert storage.match_documents(docs, [], node) == set()
        everything = flt({"AND": []})
        assert storage.match_documents(docs, ["z", "missing", "d"], everything) == {"d"}

    @pytest.mark.parametrize(
        ("filter", "expected"),
        [
            ({"field": "document_id", "operator": "in", "value": ["a", "d", "z"]}, {"a", "d"}),
            ({"field": "document_id", "operator": "starts_with", "value": "B"}, {"b"}),
            ({"field": "document_id.x", "operator": "exists", "value": False}, {"a", "b", "c", "d"}),
            ({"_internal.source": "crawl"}, {"a", "c"}),
            ({"field": "_internal.rank", "operator": "gt", "value": 1}, {"c"}),
            ({"field": "_internal.source", "operator": "is_null", "value": True}, {"d"}),
        ],
    )  # fmt: skip
    def test_match_documents_reads_ids_and_internal_fields(
        self, storage: Storage, docs: Collection, filter: dict[str, Any], expected: set[str]
    ) -> None:
        node = flt(filter)
        assert storage.match_documents(docs, ["a", "b", "c", "d", "z"], node) == expected
        assert expected == self._reference(storage, docs, ["a", "b", "c", "d", "z"], node)

    def test_match_documents_on_collection_id(
        self, storage: Storage, ns: Namespace, docs: Collection
    ) -> None:
        other = storage.get_collection(ns.namespace_id, "other")
        assert other is not None
        mine = flt({"field": "collection_id", "value": docs.collection_id})
        theirs = flt({"field": "collection_id", "value": other.collection_id})
        assert storage.match_documents(docs, ["a", "b", "z"], mine) == {"a", "b"}
        assert storage.match_documents(docs, ["a", "b", "z"], theirs) == set()
        assert storage.match_documents(other, ["a", "b", "z"], theirs) == {"a", "b", "z"}

    def test_match_documents_sees_replaced_and_deleted_documents(
        self, open_storage: OpenStorage, storage: Storage, docs: Collection
    ) -> None:
        node = flt({"category": "news"})
        assert storage.match_documents(docs, ["a", "b", "c"], node) == {"a", "c"}
        other = open_storage()
        other.delete_documents(fresh(other, docs), ["a"])
        replaced = make_write(docs, "b", vectors={}, category="NEWS", year=2022)
        other.put_documents(fresh(other, docs), [replaced], replace=True)
        assert storage.match_documents(fresh(storage, docs), ["a", "b", "c"], node) == {"b", "c"}
        year = flt({"field": "year", "operator": "gt", "value": 2021})
        assert storage.match_documents(fresh(storage, docs), ["a", "b", "c"], year) == {"b"}

    def test_an_indexed_field_holding_lists_matches_by_element(self, storage: Storage, ns: Namespace) -> None:
        indexes = (PayloadIndex("tags", "integer"), PayloadIndex("meta.lang", "keyword"))
        collection = new_collection(storage, ns, "lists", (EMB_COSINE,), indexes)
        writes = [
            make_write(collection, "scalar", vectors={}, tags=7, meta={"lang": "en"}),
            make_write(collection, "list", vectors={}, tags=[8, 7], meta=[{"lang": "en"}]),
            make_write(collection, "other", vectors={}, tags=[8], meta={"lang": ["en"]}),
        ]
        storage.put_documents(collection, writes, replace=False)
        asked = [w.document_id for w in writes]
        for obj, expected in [
            ({"field": "tags", "value": 7}, {"scalar", "list"}),
            ({"field": "tags", "operator": "in", "value": [7, 9]}, {"scalar", "list"}),
            ({"field": "tags", "operator": "gte", "value": 8}, {"list", "other"}),
            ({"field": "meta.lang", "value": "en", "case_sensitive": True}, {"scalar", "other"}),
        ]:
            node = flt(obj)
            assert storage.match_documents(collection, asked, node) == expected, obj
            assert expected == self._reference(storage, collection, asked, node), obj

    def test_a_payload_index_declared_after_list_values_were_stored_still_matches_them(
        self, storage: Storage, ns: Namespace
    ) -> None:
        collection = new_collection(storage, ns, "late-index", (EMB_COSINE,), ())
        writes = [
            make_write(collection, "list", vectors={}, tags=[7, 8]),
            make_write(collection, "scalar", vectors={}, tags=7),
        ]
        storage.put_documents(collection, writes, replace=False)
        indexed = (PayloadIndex("tags", "integer"),)
        storage.update_collection(replace(fresh(storage, collection), payload_indexes=indexed))
        node = flt({"field": "tags", "operator": "eq", "value": 7})
        current = fresh(storage, collection)
        assert self._reference(storage, current, ["list", "scalar"], node) == {"list", "scalar"}
        assert storage.match_documents(current, ["list", "scalar"], node) == {"list", "scalar"}

    @given(plan=document_plans(), data=st.data())
    @hypothesis_settings(max_examples=50, deadline=None, suppress_health_check=CONTRACT_CHECKS)
    def test_match_documents_agrees_with_the_reference_evaluator(
        self, storage: Storage, ns: Namespace, plan: DocumentPlan, data: st.DataObject
    ) -> None:
        collection, stored = apply_plan(storage, ns, plan)
        pools = pools_of(stored.values())
        for _ in range(data.draw(st.integers(1, 8), label="filters")):
            obj = data.draw(filters(pools), label="filter")
            node = parse_filter(obj) or And(())
            expected = {i for i in plan.asked if i in stored and evaluate(node, stored[i])}
            assert storage.match_documents(collection, plan.asked, node) == expected, obj

    # -- field_values -------------------------------------------------------------------------------------

    def test_field_values_read_payload_nested_and_internal_paths(
        self, storage: Storage, docs: Collection
    ) -> None:
        asked = ["a", "b", "c", "d"]
        expected: dict[str, dict[str, Any]] = {
            "category": {"a": "news", "b": "blog", "c": "News", "d": "paper"},
            "year": {"a": 2020, "b": 2021, "c": 2019.0, "d": MISSING},
            "tags": {"a": ["red", "green"], "b": [], "c": "red", "d": MISSING},
            "title": {"a": "Alpha", "b": None, "c": "Gamma", "d": MISSING},
            "meta": {"a": {"lang": "en", "scores": [1, 2]}, "b": {"lang": "fr"}, "c": [{"lang": "en"}],
                     "d": MISSING},
            "meta.lang": {"a": "en", "b": "fr", "c": MISSING, "d": MISSING},  # c: through a list
            "meta.scores": {"a": [1, 2], "b": MISSING, "c": MISSING, "d": MISSING},
            "meta.scores.0": dict.fromkeys(asked, MISSING),
            "category.x": dict.fromkeys(asked, MISSING),
            "nope": dict.fromkeys(asked, MISSING),
            "_internal.source": {"a": "crawl", "b": "upload", "c": "crawl", "d": MISSING},
            "_internal.rank": {"a": 1, "b": MISSING, "c": 3, "d": MISSING},
        }  # fmt: skip
        for name, values in expected.items():
            assert json_form(storage.field_values(docs, asked, name)) == json_form(values), name

    def test_field_values_read_document_id_and_collection_id(
        self, storage: Storage, docs: Collection
    ) -> None:
        asked = ["a", "b", "c", "d"]
        assert storage.field_values(docs, asked, "document_id") == {i: i for i in asked}
        assert storage.field_values(docs, asked, "collection_id") == dict.fromkeys(asked, docs.collection_id)
        assert storage.field_values(docs, asked, "document_id.x") == dict.fromkeys(asked, MISSING)

    def test_field_values_leave_out_missing_ids_and_other_collections_documents(
        self, storage: Storage, docs: Collection
    ) -> None:
        assert storage.field_values(docs, ["b", "z", "missing", "b"], "category") == {"b": "blog"}
        assert storage.field_values(docs, ["z"], "document_id") == {}
        assert storage.field_values(docs, [], "category") == {}

    def test_field_values_keep_integers_past_64_bits_exact(self, storage: Storage, ns: Namespace) -> None:
        collection = new_collection(storage, ns, "big", (EMB_COSINE,), ())
        write = make_write(collection, "big", vectors={}, h=2**64 + 1, nested={"h": -(2**70) - 3}, hs=[2**65])
        storage.put_documents(collection, [write], replace=False)
        [doc] = storage.get_documents(collection, ["big"])
        assert doc.payload == write.payload  # stored exactly
        for name in ("h", "nested.h", "nested", "hs"):
            expected = {"big": get_path(doc.as_dict(), name)}
            assert json_form(storage.field_values(collection, ["big"], name)) == json_form(expected), name

    @given(plan=document_plans(), names=st.lists(st.sampled_from(VALUE_FIELDS), min_size=1, max_size=5))
    @hypothesis_settings(max_examples=50, deadline=None, suppress_health_check=CONTRACT_CHECKS)
    def test_field_values_agree_with_get_path(
        self, storage: Storage, ns: Namespace, plan: DocumentPlan, names: list[str]
    ) -> None:
        collection, stored = apply_plan(storage, ns, plan)
        for name in names:
            expected = {i: get_path(stored[i], name) for i in plan.asked if i in stored}
            assert json_form(storage.field_values(collection, plan.asked, name)) == json_form(expected), name
