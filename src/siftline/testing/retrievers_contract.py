"""The RetrieverStore protocol on SQLite: create, get by id or name, list, update, delete, persistence."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from siftline.errors import AlreadyExistsError
from siftline.ids import new_id
from siftline.models import Namespace, Retriever, utcnow
from siftline.storage.base import Storage
from siftline.testing import new_namespace
from siftline.testing.namespaced import NamespacedContract

STAGES: tuple[dict[str, Any], ...] = (
    {
        "stage_name": "search",
        "stage_type": "filter",
        "config": {
            "stage_id": "feature_search",
            "parameters": {
                "searches": [
                    {"feature_uri": "mixpeek://vectors@v1/emb", "query": "{{ INPUT.v }}", "top_k": 7}
                ],
                "final_top_k": 5,
            },
            "pre_filters": {"AND": [{"field": "category", "operator": "eq", "value": "pets"}]},
        },
        "on_error": "error",
    },
    {
        "stage_name": "cap",
        "stage_type": "reduce",
        "config": {"stage_id": "limit", "parameters": {"limit": 3, "offset": 1}},
        "on_error": "skip",
    },
)
T0 = datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def make_retriever(
    namespace: Namespace, name: str, created_at: datetime | None = None, **fields: Any
) -> Retriever:
    when = created_at or utcnow()
    values: dict[str, Any] = {
        "retriever_id": new_id("ret"),
        "namespace_id": namespace.namespace_id,
        "retriever_name": name,
        "description": f"the {name} retriever",
        "collection_ids": ("col_aaaa", "col_bbbb"),
        "stages": STAGES,
        "input_schema": {"v": {"type": "array", "required": True, "description": "query vector"}},
        "budget_limits": {"max_credits": 12.5, "max_time_ms": 800},
        "cache_config": {"enabled": True, "ttl_seconds": 60},
        "tags": ("prod", "ünïcode"),
        "metadata": {"owner": "search-team", "nested": {"list": [1, 2.5, None, "x"], "flag": False}},
        "created_at": when,
        "updated_at": when,
    }
    values.update(fields)
    return Retriever(**values)


class RetrieverStoreContract(NamespacedContract):
    """Every backend's RetrieverStore must pass these; a subclass provides ``open_storage`` (a callable
    returning a new Storage over one persistent location)."""

    def test_a_created_retriever_is_found_by_id_and_by_name(self, storage: Storage, ns: Namespace) -> None:
        retriever = make_retriever(ns, "hybrid")
        storage.create_retriever(retriever)

        assert storage.get_retriever(ns.namespace_id, retriever.retriever_id) == retriever
        assert storage.get_retriever(ns.namespace_id, "hybrid") == retriever
        assert storage.get_retriever(ns.namespace_id, "missing") is None
        assert storage.get_retriever(ns.namespace_id, new_id("ret")) is None

    def test_a_retriever_is_invisible_from_another_namespace(
        self, storage: Storage, ns: Namespace, other_ns: Namespace
    ) -> None:
        retriever = make_retriever(ns, "hybrid")
        storage.create_retriever(retriever)

        assert storage.get_retriever(other_ns.namespace_id, retriever.retriever_id) is None
        assert storage.get_retriever(other_ns.namespace_id, "hybrid") is None
        assert storage.list_retrievers(other_ns.namespace_id, 10, 0) == ([], 0)

    def test_every_field_round_trips_exactly(self, storage: Storage, ns: Namespace) -> None:
        retriever = make_retriever(ns, "full", created_at=T0, version=7, updated_at=T0 + timedelta(seconds=3))
        storage.create_retriever(retriever)

        found = storage.get_retriever(ns.namespace_id, "full")
        assert found == retriever
        assert found is not None
        assert (
            found.stages == STAGES
            and found.stages[0]["config"]["pre_filters"] == STAGES[0]["config"]["pre_filters"]
        )
        assert found.input_schema == retriever.input_schema
        assert found.budget_limits == {"max_credits": 12.5, "max_time_ms": 800}
        assert found.tags == ("prod", "ünïcode") and found.metadata == retriever.metadata
        assert found.created_at == T0 and found.updated_at == T0 + timedelta(seconds=3) and found.version == 7

    def test_empty_optional_parts_round_trip(self, storage: Storage, ns: Namespace) -> None:
        bare = make_retriever(
            ns,
            "bare",
            description=None,
            collection_ids=(),
            input_schema={},
            budget_limits={},
            cache_config={},
            tags=(),
            metadata={},
        )
        storage.create_retriever(bare)
        assert storage.get_retriever(ns.namespace_id, bare.retriever_id) == bare

    def test_a_duplicate_name_in_one_namespace_is_refused(self, storage: Storage, ns: Namespace) -> None:
        first = make_retriever(ns, "hybrid")
        storage.create_retriever(first)

        with pytest.raises(AlreadyExistsError):
            storage.create_retriever(make_retriever(ns, "hybrid", description="another"))
        assert storage.get_retriever(ns.namespace_id, "hybrid") == first
        assert storage.list_retrievers(ns.namespace_id, 10, 0)[1] == 1

    def test_the_same_name_may_exist_in_two_namespaces(
        self, storage: Storage, ns: Namespace, other_ns: Namespace
    ) -> None:
        mine, theirs = make_retriever(ns, "hybrid"), make_retriever(other_ns, "hybrid")
        storage.create_retriever(mine)
        storage.create_retriever(theirs)

        assert storage.get_retriever(ns.namespace_id, "hybrid") == mine
        assert storage.get_retriever(other_ns.namespace_id, "hybrid") == theirs

    def test_list_is_newest_first_with_the_total_and_pages(self, storage: Storage, ns: Namespace) -> None:
        made = [make_retriever(ns, f"r{i}", created_at=T0 + timedelta(minutes=i)) for i in range(5)]
        for retriever in (made[2], made[0], made[4], made[1], made[3]):  # insertion order is not the order
            storage.create_retriever(retriever)

        found, total = storage.list_retrievers(ns.namespace_id, 10, 0)
        assert [r.retriever_name for r in found] == ["r4", "r3", "r2", "r1", "r0"] and total == 5
        page, total = storage.list_retrievers(ns.namespace_id, 2, 2)
        assert [r.retriever_name for r in page] == ["r2", "r1"] and total == 5
        assert storage.list_retrievers(ns.namespace_id, 2, 10) == ([], 5)

    def test_list_is_newest_first_when_a_retriever_was_created_on_a_whole_second(
        self, storage: Storage, ns: Namespace
    ) -> None:
        whole = datetime(2024, 5, 1, 12, 0, 0, 0, tzinfo=UTC)
        storage.create_retriever(make_retriever(ns, "older", created_at=whole))
        storage.create_retriever(make_retriever(ns, "newer", created_at=whole + timedelta(milliseconds=500)))

        found, _ = storage.list_retrievers(ns.namespace_id, 10, 0)
        assert [r.retriever_name for r in found] == ["newer", "older"]

    def test_update_stores_the_new_state(self, storage: Storage, ns: Namespace) -> None:
        retriever = make_retriever(ns, "hybrid", created_at=T0)
        storage.create_retriever(retriever)
        changed = replace(
            retriever,
            retriever_name="hybrid-v2",
            description="renamed",
            tags=("beta",),
            metadata={"owner": "someone else"},
            budget_limits={"max_credits": 3},
            updated_at=T0 + timedelta(hours=1),
            version=2,
        )
        storage.update_retriever(changed)

        assert storage.get_retriever(ns.namespace_id, retriever.retriever_id) == changed
        assert storage.get_retriever(ns.namespace_id, "hybrid-v2") == changed
        assert storage.get_retriever(ns.namespace_id, "hybrid") is None
        assert storage.list_retrievers(ns.namespace_id, 10, 0) == ([changed], 1)

    def test_update_keeping_the_same_name_is_not_a_clash(self, storage: Storage, ns: Namespace) -> None:
        retriever = make_retriever(ns, "hybrid")
        storage.create_retriever(retriever)
        storage.update_retriever(replace(retriever, description="same name", version=2))
        found = storage.get_retriever(ns.namespace_id, "hybrid")
        assert found is not None and found.description == "same name" and found.version == 2

    def test_renaming_onto_a_taken_name_is_refused_and_changes_nothing(
        self, storage: Storage, ns: Namespace
    ) -> None:
        first, second = make_retriever(ns, "first"), make_retriever(ns, "second")
        storage.create_retriever(first)
        storage.create_retriever(second)

        with pytest.raises(AlreadyExistsError):
            storage.update_retriever(replace(second, retriever_name="first", description="clash", version=2))
        assert storage.get_retriever(ns.namespace_id, second.retriever_id) == second
        assert storage.get_retriever(ns.namespace_id, "first") == first

    def test_renaming_onto_a_name_used_in_another_namespace_is_allowed(
        self, storage: Storage, ns: Namespace, other_ns: Namespace
    ) -> None:
        storage.create_retriever(make_retriever(other_ns, "shared"))
        mine = make_retriever(ns, "mine")
        storage.create_retriever(mine)
        storage.update_retriever(replace(mine, retriever_name="shared", version=2))
        found = storage.get_retriever(ns.namespace_id, "shared")
        assert found is not None and found.retriever_id == mine.retriever_id

    def test_delete_removes_the_retriever_once(self, storage: Storage, ns: Namespace) -> None:
        keep, gone = make_retriever(ns, "keep"), make_retriever(ns, "gone")
        storage.create_retriever(keep)
        storage.create_retriever(gone)

        assert storage.delete_retriever(ns.namespace_id, gone.retriever_id) is True
        assert storage.get_retriever(ns.namespace_id, gone.retriever_id) is None
        assert storage.get_retriever(ns.namespace_id, "gone") is None
        assert storage.delete_retriever(ns.namespace_id, gone.retriever_id) is False
        assert storage.list_retrievers(ns.namespace_id, 10, 0) == ([keep], 1)

    def test_delete_through_another_namespace_deletes_nothing(
        self, storage: Storage, ns: Namespace, other_ns: Namespace
    ) -> None:
        retriever = make_retriever(ns, "hybrid")
        storage.create_retriever(retriever)
        assert storage.delete_retriever(other_ns.namespace_id, retriever.retriever_id) is False
        assert storage.get_retriever(ns.namespace_id, retriever.retriever_id) == retriever

    def test_a_deleted_name_can_be_used_again(self, storage: Storage, ns: Namespace) -> None:
        old = make_retriever(ns, "hybrid")
        storage.create_retriever(old)
        storage.delete_retriever(ns.namespace_id, old.retriever_id)
        new = make_retriever(ns, "hybrid")
        storage.create_retriever(new)
        assert storage.get_retriever(ns.namespace_id, "hybrid") == new

    def test_deleting_the_namespace_deletes_its_retrievers_only(
        self, storage: Storage, ns: Namespace, other_ns: Namespace
    ) -> None:
        doomed = [make_retriever(ns, f"r{i}") for i in range(3)]
        for retriever in doomed:
            storage.create_retriever(retriever)
        survivor = make_retriever(other_ns, "r0")
        storage.create_retriever(survivor)

        assert storage.delete_namespace(ns.namespace_id) is True
        assert storage.list_retrievers(ns.namespace_id, 10, 0) == ([], 0)
        assert all(storage.get_retriever(ns.namespace_id, r.retriever_id) is None for r in doomed)
        assert storage.list_retrievers(other_ns.namespace_id, 10, 0) == ([survivor], 1)
        # A namespace of the same name made later starts empty.
        again = new_namespace(storage, "alpha")
        assert storage.list_retrievers(again.namespace_id, 10, 0) == ([], 0)

    def test_retrievers_survive_close_and_reopen(self, open_storage: Callable[[], Storage]) -> None:
        storage = open_storage()
        ns = new_namespace(storage, "alpha")
        kept = make_retriever(ns, "kept", created_at=T0)
        updated = make_retriever(ns, "updated", created_at=T0 + timedelta(seconds=1))
        deleted = make_retriever(ns, "deleted", created_at=T0 + timedelta(seconds=2))
        for retriever in (kept, updated, deleted):
            storage.create_retriever(retriever)
        updated = replace(updated, retriever_name="updated-v2", version=2, updated_at=T0 + timedelta(days=1))
        storage.update_retriever(updated)
        storage.delete_retriever(ns.namespace_id, deleted.retriever_id)
        storage.close()

        reopened = open_storage()
        assert reopened.list_retrievers(ns.namespace_id, 10, 0) == ([updated, kept], 2)
        assert reopened.get_retriever(ns.namespace_id, "kept") == kept
        assert reopened.get_retriever(ns.namespace_id, deleted.retriever_id) is None
        with pytest.raises(AlreadyExistsError):
            reopened.create_retriever(make_retriever(ns, "updated-v2"))
