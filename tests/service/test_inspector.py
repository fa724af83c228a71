"""What the inspector reads (service/inspector.py): sorted and paged lists of one namespace's records, the
sort window, lookups scoped to the namespace, and the plan an execution ran."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from siftline.config import Settings
from siftline.errors import NotFoundError
from siftline.models import Namespace
from siftline.service import executions, inspector, namespaces
from siftline.storage.base import Storage
from siftline.storage.factory import open_storage
from siftline.testing.records_contract import make_record
from siftline.testing.retrievers_contract import make_retriever


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    store = open_storage(Settings(data_dir=tmp_path / "data"))
    yield store
    store.close()


@pytest.fixture
def ns(storage: Storage) -> Namespace:
    return namespaces.ensure_namespace(storage, "inspect")


def test_time_order_pages_through_storage_and_other_orders_sort_the_window(
    storage: Storage, ns: Namespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    durations = [5.0, 1.0, 9.0, 3.0, 7.0]
    made = [make_record(ns, i, duration_ms=d, warnings=["w"] * i) for i, d in enumerate(durations)]
    for record in made:
        storage.save_execution(record)
    newest = inspector.list_executions(storage, ns, inspector.ListQuery(limit=2, offset=1))
    assert [r.execution_id for r in newest.records] == [made[3].execution_id, made[2].execution_id]
    assert newest.total == 5 and not newest.windowed
    slowest = inspector.list_executions(storage, ns, inspector.ListQuery(sort="duration", limit=3))
    assert [r.detail["duration_ms"] for r in slowest.records] == [9.0, 7.0, 5.0]
    fastest = inspector.list_executions(storage, ns, inspector.ListQuery(sort="duration", descending=False))
    assert [r.detail["duration_ms"] for r in fastest.records] == sorted(durations)
    oldest = inspector.list_executions(storage, ns, inspector.ListQuery(descending=False, limit=1))
    assert oldest.records[0].execution_id == made[0].execution_id
    most_warned = inspector.list_executions(storage, ns, inspector.ListQuery(sort="warnings", limit=1))
    assert most_warned.records[0].execution_id == made[4].execution_id
    monkeypatch.setattr(inspector, "SORT_WINDOW", 3)
    windowed = inspector.list_executions(storage, ns, inspector.ListQuery(sort="duration"))
    assert windowed.windowed and windowed.total == 3
    assert [r.detail["duration_ms"] for r in windowed.records] == [9.0, 7.0, 3.0]  # the newest 3, sorted


def test_sorting_by_retriever_uses_names_and_keeps_ad_hoc_apart(storage: Storage, ns: Namespace) -> None:
    zeta = make_retriever(ns, "zeta")
    alpha = make_retriever(ns, "alpha")
    for r in (zeta, alpha):
        storage.create_retriever(r)
    records = [
        make_record(ns, 0, retriever_id=zeta.retriever_id),
        make_record(ns, 1, retriever_id=None),
        make_record(ns, 2, retriever_id=alpha.retriever_id),
    ]
    for record in records:
        storage.save_execution(record)
    query = inspector.ListQuery(sort="retriever", descending=False)
    found = inspector.list_executions(storage, ns, query).records
    assert [r.retriever_id for r in found] == [None, alpha.retriever_id, zeta.retriever_id]
    assert inspector.retriever_names(storage, ns) == {zeta.retriever_id: "zeta", alpha.retriever_id: "alpha"}
    assert inspector.resolve_retriever(storage, ns, "alpha") == alpha.retriever_id
    assert inspector.resolve_retriever(storage, ns, "ret_gone") == "ret_gone"


def test_lookups_never_cross_namespaces(storage: Storage, ns: Namespace) -> None:
    other = namespaces.ensure_namespace(storage, "other")
    mine, theirs = make_record(ns, 0), make_record(other, 1)
    for record in (mine, theirs):
        storage.save_execution(record)
    assert executions.find_any(storage, ns, mine.execution_id).execution_id == mine.execution_id
    with pytest.raises(NotFoundError):
        executions.find_any(storage, ns, theirs.execution_id)
    found = inspector.executions_by_id(
        storage, ns, [theirs.execution_id, mine.execution_id, mine.execution_id]
    )
    assert [r.execution_id for r in found] == [mine.execution_id]
    assert inspector.list_executions(storage, other, inspector.ListQuery()).total == 1


def test_the_plan_comes_from_the_record_else_from_the_retriever(storage: Storage, ns: Namespace) -> None:
    retriever = make_retriever(ns, "planned")
    storage.create_retriever(retriever)
    kept = [{"stage_name": "s", "config": {"stage_id": "feature_search", "parameters": {}}}]
    from_record = make_record(ns, 0, retriever_id=retriever.retriever_id, replay={"stages": kept})
    assert inspector.planned_stages(storage, ns, from_record) == inspector.PlannedStages(kept, "record")
    older = make_record(ns, 0, retriever_id=retriever.retriever_id)
    planned = inspector.planned_stages(storage, ns, older)
    assert planned.source == "retriever" and planned.stages == [dict(s) for s in retriever.stages]
    assert planned.retriever_name == "planned"
    storage.update_retriever(replace(retriever, version=2, updated_at=older.created_at + timedelta(days=1)))
    assert inspector.planned_stages(storage, ns, older).changed_since
    adhoc = make_record(ns, 0, retriever_id=None)
    assert inspector.planned_stages(storage, ns, adhoc) == inspector.PlannedStages(None, "unknown")
