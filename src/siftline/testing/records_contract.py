"""The RecordStore protocol on SQLite: execution records saved, read, listed, failed at start-up, their
documents dropped by retention, scoped by namespace and kept across a restart."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from siftline.ids import new_id
from siftline.models import ExecutionRecord, Namespace
from siftline.storage.base import Storage
from siftline.testing.namespaced import NamespacedContract
from siftline.testing.servers_contract import dead_server_id

T0 = datetime(2025, 3, 4, 10, 0, 0, 123_456, tzinfo=UTC)
DOCS: list[dict[str, Any]] = [
    {"document_id": "d1", "score": 0.9, "title": "Ünïcode café", "nested": {"tags": ["a", "b"], "n": None}},
    {"document_id": "d2", "score": 0.5, "title": "second", "year": 2021},
]


def make_record(
    namespace: Namespace,
    minutes: float = 0,
    *,
    retriever_id: str | None = "ret_aaaa",
    status: str = "completed",
    documents: list[dict[str, Any]] | None = None,
    execution_id: str | None = None,
    owner: str | None = None,
    **detail: Any,
) -> ExecutionRecord:
    created = T0 + timedelta(minutes=minutes)
    finished = status in ("completed", "failed")
    return ExecutionRecord(
        execution_id=execution_id or new_id("exec"),
        namespace_id=namespace.namespace_id,
        retriever_id=retriever_id,
        mode="saved" if retriever_id else "adhoc",
        status=status,
        created_at=created,
        completed_at=created + timedelta(seconds=1) if finished else None,
        detail={
            "status": status,
            "stage_statistics": {"stages": {"search": {"input_count": 0, "output_count": 2}}},
            "total_returned": len(documents or []),
            "inputs": '{"q":"ü"}',
            **detail,
        },
        documents=documents,
        owner=owner,
    )


def ids(records: list[ExecutionRecord]) -> list[str]:
    return [r.execution_id for r in records]


class RecordStoreContract(NamespacedContract):
    """Every backend's RecordStore must pass these; a subclass provides ``open_storage`` (a callable
    returning a new Storage over one persistent location)."""

    def test_a_saved_record_is_read_back_with_its_detail_and_documents(
        self, storage: Storage, ns: Namespace
    ) -> None:
        record = make_record(ns, documents=DOCS, warnings=["w"], budget={"credits_used": 0.5})
        storage.save_execution(record)

        found = storage.get_execution(ns.namespace_id, record.execution_id)
        assert found == record
        assert found is not None and found.created_at == T0 and found.created_at.tzinfo is not None
        assert found.documents == DOCS and found.detail["inputs"] == '{"q":"ü"}'

    def test_a_record_without_documents_reads_back_as_none_and_an_empty_list_stays_a_list(
        self, storage: Storage, ns: Namespace
    ) -> None:
        unretained = make_record(ns, documents=None)
        empty = make_record(ns, 1, documents=[])
        storage.save_execution(unretained)
        storage.save_execution(empty)

        got_unretained = storage.get_execution(ns.namespace_id, unretained.execution_id)
        got_empty = storage.get_execution(ns.namespace_id, empty.execution_id)
        assert got_unretained is not None and got_unretained.documents is None
        assert got_empty is not None and got_empty.documents == []

    def test_an_ad_hoc_record_keeps_its_mode_and_no_retriever(self, storage: Storage, ns: Namespace) -> None:
        record = make_record(ns, retriever_id=None)
        storage.save_execution(record)

        found = storage.get_execution(ns.namespace_id, record.execution_id)
        assert found is not None and found.mode == "adhoc" and found.retriever_id is None

    def test_an_unknown_execution_id_is_none(self, storage: Storage, ns: Namespace) -> None:
        assert storage.get_execution(ns.namespace_id, new_id("exec")) is None

    def test_saving_again_replaces_the_record(self, storage: Storage, ns: Namespace) -> None:
        started = make_record(ns, status="processing", current_stage="search")
        storage.save_execution(started)
        finished = make_record(
            ns, status="completed", documents=DOCS, execution_id=started.execution_id, current_stage=None
        )
        storage.save_execution(finished)

        found = storage.get_execution(ns.namespace_id, started.execution_id)
        assert found == finished
        assert storage.list_executions(ns.namespace_id)[1] == 1

    def test_a_record_is_invisible_from_another_namespace(
        self, storage: Storage, ns: Namespace, other_ns: Namespace
    ) -> None:
        record = make_record(ns, documents=DOCS)
        storage.save_execution(record)

        assert storage.get_execution(other_ns.namespace_id, record.execution_id) is None
        assert storage.list_executions(other_ns.namespace_id) == ([], 0)
        assert storage.list_executions(other_ns.namespace_id, retriever_id="ret_aaaa") == ([], 0)

    def test_lists_are_newest_first_with_the_total_and_without_documents(
        self, storage: Storage, ns: Namespace
    ) -> None:
        records = [make_record(ns, minutes, documents=DOCS) for minutes in (5, 1, 3, 2, 4)]
        for record in records:
            storage.save_execution(record)
        newest_first = ids(sorted(records, key=lambda r: r.created_at, reverse=True))

        found, total = storage.list_executions(ns.namespace_id)
        assert ids(found) == newest_first and total == 5
        assert all(r.documents is None for r in found)
        assert found[0].detail == records[0].detail

        page, total = storage.list_executions(ns.namespace_id, limit=2, offset=1)
        assert ids(page) == newest_first[1:3] and total == 5
        assert storage.list_executions(ns.namespace_id, limit=2, offset=5) == ([], 5)

    def test_lists_filter_by_retriever_and_mode(self, storage: Storage, ns: Namespace) -> None:
        a1, a2 = make_record(ns, 1, retriever_id="ret_a"), make_record(ns, 2, retriever_id="ret_a")
        b = make_record(ns, 3, retriever_id="ret_b")
        adhoc = make_record(ns, 4, retriever_id=None)
        for record in (a1, a2, b, adhoc):
            storage.save_execution(record)

        found, total = storage.list_executions(ns.namespace_id, retriever_id="ret_a")
        assert ids(found) == [a2.execution_id, a1.execution_id] and total == 2
        found, total = storage.list_executions(ns.namespace_id, mode="adhoc")
        assert ids(found) == [adhoc.execution_id] and total == 1
        found, total = storage.list_executions(ns.namespace_id, mode="saved")
        assert ids(found) == [b.execution_id, a2.execution_id, a1.execution_id] and total == 3

    def test_lists_filter_by_one_or_several_statuses(self, storage: Storage, ns: Namespace) -> None:
        done = make_record(ns, 1, status="completed")
        failed = make_record(ns, 2, status="failed", error="boom")
        running = make_record(ns, 3, status="processing")
        for record in (done, failed, running):
            storage.save_execution(record)

        assert ids(storage.list_executions(ns.namespace_id, statuses=["failed"])[0]) == [failed.execution_id]
        found, total = storage.list_executions(ns.namespace_id, statuses=["completed", "processing"])
        assert ids(found) == [running.execution_id, done.execution_id] and total == 2
        assert storage.list_executions(ns.namespace_id, statuses=["pending"]) == ([], 0)

    def test_lists_filter_by_a_time_range_with_inclusive_bounds(
        self, storage: Storage, ns: Namespace
    ) -> None:
        records = [make_record(ns, minutes) for minutes in range(5)]  # T0, T0+1m, … T0+4m
        for record in records:
            storage.save_execution(record)

        since, until = T0 + timedelta(minutes=1), T0 + timedelta(minutes=3)
        found, total = storage.list_executions(ns.namespace_id, since=since, until=until)
        assert ids(found) == ids(records[3:0:-1]) and total == 3
        found, total = storage.list_executions(
            ns.namespace_id, since=T0 + timedelta(minutes=3, microseconds=1)
        )
        assert ids(found) == [records[4].execution_id] and total == 1
        found, total = storage.list_executions(ns.namespace_id, until=T0 - timedelta(microseconds=1))
        assert (found, total) == ([], 0)

    def test_a_time_range_given_in_another_time_zone_means_the_same_instant(
        self, storage: Storage, ns: Namespace
    ) -> None:
        records = [make_record(ns, minutes) for minutes in (0, 60, 120)]
        for record in records:
            storage.save_execution(record)
        plus_two = timezone(timedelta(hours=2))

        found, total = storage.list_executions(
            ns.namespace_id, since=(T0 + timedelta(minutes=60)).astimezone(plus_two)
        )
        assert ids(found) == [records[2].execution_id, records[1].execution_id] and total == 2

    def test_fail_unfinished_fails_every_pending_or_processing_record_and_nothing_else(
        self, storage: Storage, ns: Namespace, other_ns: Namespace
    ) -> None:
        running = make_record(ns, 1, status="processing", current_stage="search")
        pending = make_record(other_ns, 2, status="pending")
        done = make_record(ns, 3, status="completed", documents=DOCS)
        for record in (running, pending, done):
            storage.save_execution(record)

        assert storage.fail_unfinished("the server stopped") == 2

        for record in (running, pending):
            found = storage.get_execution(record.namespace_id, record.execution_id)
            assert found is not None and found.status == "failed"
            assert found.detail["error"] == "the server stopped" and found.detail["status"] == "failed"
            assert found.completed_at is not None and found.completed_at >= found.created_at
            assert found.detail["stage_statistics"] == record.detail["stage_statistics"]
        assert storage.get_execution(ns.namespace_id, done.execution_id) == done
        assert storage.list_executions(ns.namespace_id, statuses=["processing"]) == ([], 0)
        assert storage.fail_unfinished("again") == 0

    def test_fail_unfinished_leaves_the_records_of_this_live_server_alone(
        self, storage: Storage, ns: Namespace
    ) -> None:
        mine = make_record(ns, 1, status="processing", owner=storage.server_id)
        gone = make_record(ns, 2, status="processing", owner=dead_server_id())
        orphan = make_record(ns, 3, status="pending")
        for record in (mine, gone, orphan):
            storage.save_execution(record)

        assert storage.fail_unfinished("the server stopped") == 2

        assert storage.get_execution(ns.namespace_id, mine.execution_id) == mine
        for record in (gone, orphan):
            found = storage.get_execution(ns.namespace_id, record.execution_id)
            assert found is not None and found.status == "failed" and found.owner == record.owner

    def test_a_record_left_running_by_a_closed_server_is_failed_by_the_next(
        self, open_storage: Callable[[], Storage], storage: Storage, ns: Namespace
    ) -> None:
        running = make_record(ns, 1, status="processing", owner=storage.server_id)
        storage.save_execution(running)
        storage.close()

        reopened = open_storage()
        assert reopened.server_id != storage.server_id
        assert reopened.get_execution(ns.namespace_id, running.execution_id) == running
        assert reopened.fail_unfinished("the server stopped") == 1
        found = reopened.get_execution(ns.namespace_id, running.execution_id)
        assert found is not None and found.status == "failed"

    def test_drop_documents_keeps_only_the_newest_records_documents_and_every_statistic(
        self, storage: Storage, ns: Namespace
    ) -> None:
        records = [make_record(ns, minutes, documents=DOCS) for minutes in range(4)]
        for record in records:
            storage.save_execution(record)

        assert storage.drop_documents(keep_last=2, before=None) == 2

        for record, kept in zip(records, (False, False, True, True), strict=True):
            found = storage.get_execution(ns.namespace_id, record.execution_id)
            assert found is not None
            assert found.documents == (DOCS if kept else None)
            assert found.detail == record.detail and found.status == record.status
        assert storage.drop_documents(keep_last=2, before=None) == 0

    def test_drop_documents_forgets_the_documents_of_records_older_than_a_time(
        self, storage: Storage, ns: Namespace
    ) -> None:
        records = [make_record(ns, minutes, documents=DOCS) for minutes in range(3)]
        for record in records:
            storage.save_execution(record)

        assert storage.drop_documents(keep_last=None, before=T0 + timedelta(minutes=1)) == 1

        kept = [storage.get_execution(ns.namespace_id, r.execution_id) for r in records]
        assert [k.documents if k else "missing" for k in kept] == [None, DOCS, DOCS]
        assert storage.drop_documents(keep_last=None, before=None) == 0

    def test_drop_documents_with_keep_last_zero_forgets_every_records_documents(
        self, storage: Storage, ns: Namespace
    ) -> None:
        records = [make_record(ns, minutes, documents=DOCS) for minutes in range(2)]
        for record in records:
            storage.save_execution(record)

        assert storage.drop_documents(keep_last=0, before=None) == 2
        assert all(
            (found := storage.get_execution(ns.namespace_id, r.execution_id)) is not None
            and found.documents is None
            for r in records
        )

    def test_deleting_a_namespace_deletes_its_records_only(
        self, storage: Storage, ns: Namespace, other_ns: Namespace
    ) -> None:
        mine = make_record(ns, documents=DOCS)
        theirs = make_record(other_ns, documents=DOCS)
        storage.save_execution(mine)
        storage.save_execution(theirs)

        assert storage.delete_namespace(ns.namespace_id)

        assert storage.get_execution(ns.namespace_id, mine.execution_id) is None
        assert storage.list_executions(ns.namespace_id) == ([], 0)
        assert storage.get_execution(other_ns.namespace_id, theirs.execution_id) == theirs

    def test_records_survive_closing_and_reopening_the_database(
        self, open_storage: Callable[[], Storage], storage: Storage, ns: Namespace
    ) -> None:
        done = make_record(ns, 1, documents=DOCS, warnings=["kept"])
        running = make_record(ns, 2, status="processing", retriever_id=None)
        storage.save_execution(done)
        storage.save_execution(running)
        storage.close()

        reopened = open_storage()
        assert reopened.get_execution(ns.namespace_id, done.execution_id) == done
        assert reopened.get_execution(ns.namespace_id, running.execution_id) == running
        found, total = reopened.list_executions(ns.namespace_id)
        assert ids(found) == [running.execution_id, done.execution_id] and total == 2
