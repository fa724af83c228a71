"""The contracts of the stores learned fusion and evaluations keep: interactions (``InteractionStore``),
posteriors (``FusionStore``) and evaluation datasets and runs (``EvaluationStore``).

Like the other contracts, a subclass provides ``open_storage`` (a callable returning a new Storage over
one persistent location); concurrency is played with several instances over that location, as several
processes or servers would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from siftline.errors import AlreadyExistsError
from siftline.ids import new_id
from siftline.models import (
    EvaluationDataset,
    EvaluationRun,
    Interaction,
    InteractionQuery,
    Namespace,
    PosteriorUpdate,
)
from siftline.storage.base import Storage
from siftline.testing.namespaced import NamespacedContract

T0 = datetime(2025, 6, 1, 12, 0, 0, 250_000, tzinfo=UTC)
DAY = 86_400.0


def interaction(
    ns: Namespace,
    minutes: float = 0,
    *,
    key: str | None = None,
    types: tuple[str, ...] = ("click",),
    **fields: object,
) -> Interaction:
    at = T0 + timedelta(minutes=minutes)
    values: dict[str, object] = {
        "interaction_id": new_id("int"),
        "namespace_id": ns.namespace_id,
        "execution_id": "exec_a",
        "retriever_id": "ret_a",
        "feature_id": "doc-1",
        "interaction_types": types,
        "position": 2,
        "recorded_at": at,
        "occurred_at": at,
        "user_id": "u1",
        "session_id": "s1",
        "feature_uri": "mixpeek://vectors@v1/emb",
        "document_score": 0.75,
        "result_set_size": 10,
        "metadata": {"source": "Ünïcode", "n": [1, 2.5, None]},
        "query_snapshot": {"q": "cats"},
        "dedupe_key": key or new_id("key"),
    }
    values.update(fields)
    return Interaction(**values)  # type: ignore[arg-type]


def update(
    context: str = "all", uri: str = "leg-a", success: float = 1.0, failure: float = 0.0
) -> PosteriorUpdate:
    return PosteriorUpdate("global", context, uri, success, failure, 1.0, 1.0, 0.5)


class InteractionStoreContract(NamespacedContract):
    def test_an_interaction_round_trips_every_field(self, storage: Storage, ns: Namespace) -> None:
        item = interaction(ns)
        assert storage.add_interactions([item], T0 - timedelta(days=1)) == [(item.interaction_id, True)]
        assert storage.get_interaction(ns.namespace_id, item.interaction_id) == item

    def test_a_retry_within_the_window_is_dropped_and_names_the_first(
        self, storage: Storage, ns: Namespace
    ) -> None:
        first, retry = interaction(ns, key="k"), interaction(ns, 1, key="k")
        storage.add_interactions([first], T0 - timedelta(hours=1))
        assert storage.add_interactions([retry], T0 - timedelta(hours=1)) == [(first.interaction_id, False)]
        assert storage.list_interactions(ns.namespace_id, InteractionQuery(), 10, 0)[1] == 1

    def test_the_same_key_outside_the_window_is_stored_again(self, storage: Storage, ns: Namespace) -> None:
        first, later = interaction(ns, key="k"), interaction(ns, 120, key="k")
        storage.add_interactions([first], T0 - timedelta(hours=1))
        assert storage.add_interactions([later], T0 + timedelta(minutes=60)) == [(later.interaction_id, True)]

    def test_duplicates_inside_one_call_are_stored_once(self, storage: Storage, ns: Namespace) -> None:
        a, b, c = interaction(ns, key="k"), interaction(ns, key="k"), interaction(ns, key="other")
        out = storage.add_interactions([a, b, c], T0 - timedelta(hours=1))
        assert out == [(a.interaction_id, True), (a.interaction_id, False), (c.interaction_id, True)]

    def test_the_same_key_in_another_namespace_is_not_a_duplicate(
        self, storage: Storage, ns: Namespace, other_ns: Namespace
    ) -> None:
        storage.add_interactions([interaction(ns, key="k")], T0 - timedelta(hours=1))
        theirs = interaction(other_ns, key="k")
        assert storage.add_interactions([theirs], T0 - timedelta(hours=1)) == [(theirs.interaction_id, True)]
        assert storage.get_interaction(ns.namespace_id, theirs.interaction_id) is None

    def test_concurrent_retries_through_several_instances_store_one_copy(
        self, open_storage: Callable[[], Storage], ns: Namespace
    ) -> None:
        instances = [open_storage() for _ in range(4)]
        stored: list[bool] = []
        lock = threading.Lock()

        def add(s: Storage) -> None:
            for _ in range(5):
                result = s.add_interactions([interaction(ns, key="same")], T0 - timedelta(hours=1))
                with lock:
                    stored.extend(flag for _, flag in result)

        threads = [threading.Thread(target=add, args=(s,)) for s in instances]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert stored.count(True) == 1 and len(stored) == 20
        assert instances[0].list_interactions(ns.namespace_id, InteractionQuery(), 50, 0)[1] == 1

    def test_lists_filter_and_come_newest_first_with_the_total(self, storage: Storage, ns: Namespace) -> None:
        items = [
            interaction(ns, 0, execution_id="e1", types=("click",)),
            interaction(ns, 1, execution_id="e2", user_id="u2", types=("view", "purchase")),
            interaction(ns, 2, execution_id="e1", session_id="s2", feature_id="doc-2"),
        ]
        storage.add_interactions(items, T0 - timedelta(hours=1))

        def listed(**query: object) -> list[str]:
            found, total = storage.list_interactions(ns.namespace_id, InteractionQuery(**query), 10, 0)  # type: ignore[arg-type]
            assert total == len(found)
            return [i.interaction_id for i in found]

        newest_first = [i.interaction_id for i in reversed(items)]
        assert listed() == newest_first
        assert listed(execution_id="e1") == [items[2].interaction_id, items[0].interaction_id]
        assert listed(user_id="u2") == [items[1].interaction_id]
        assert listed(session_id="s2") == listed(feature_id="doc-2") == [items[2].interaction_id]
        assert listed(interaction_type="purchase") == [items[1].interaction_id]
        assert listed(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=1)) == [
            items[1].interaction_id
        ]
        page, total = storage.list_interactions(ns.namespace_id, InteractionQuery(), 1, 1)
        assert total == 3 and [i.interaction_id for i in page] == [items[1].interaction_id]

    def test_delete_removes_one_interaction_of_its_namespace(
        self, storage: Storage, ns: Namespace, other_ns: Namespace
    ) -> None:
        item = interaction(ns)
        storage.add_interactions([item], T0 - timedelta(hours=1))
        assert storage.delete_interaction(other_ns.namespace_id, item.interaction_id) is False
        assert storage.delete_interaction(ns.namespace_id, item.interaction_id) is True
        assert storage.get_interaction(ns.namespace_id, item.interaction_id) is None
        assert storage.delete_interaction(ns.namespace_id, item.interaction_id) is False

    def test_deleting_the_namespace_deletes_its_interactions(self, storage: Storage, ns: Namespace) -> None:
        item = interaction(ns)
        storage.add_interactions([item], T0 - timedelta(hours=1))
        storage.delete_namespace(ns.namespace_id)
        assert storage.get_interaction(ns.namespace_id, item.interaction_id) is None


class FusionStoreContract(NamespacedContract):
    def test_no_evidence_reads_as_empty_contexts(self, storage: Storage, ns: Namespace) -> None:
        got = storage.get_posteriors(ns.namespace_id, "ret", "fuse", [("global", "all"), ("personal", "u1")])
        assert got == {("global", "all"): {}, ("personal", "u1"): {}}

    def test_the_first_evidence_starts_from_the_prior(self, storage: Storage, ns: Namespace) -> None:
        storage.update_posteriors(
            ns.namespace_id,
            "ret",
            "fuse",
            [update(success=1), update(uri="leg-b", success=0, failure=1)],
            1000.0,
        )
        got = storage.get_posteriors(ns.namespace_id, "ret", "fuse", [("global", "all")])[("global", "all")]
        a, b = got["leg-a"], got["leg-b"]
        assert (a.alpha, a.beta, a.interactions, a.updated_at) == (2.0, 1.0, 1.0, 1000.0)
        assert (b.alpha, b.beta, b.interactions) == (1.0, 2.0, 1.0)

    def test_evidence_decays_toward_the_prior_by_the_days_since_the_last_update(
        self, storage: Storage, ns: Namespace
    ) -> None:
        storage.update_posteriors(ns.namespace_id, "ret", "fuse", [update(success=3)], 0.0)  # alpha 4
        storage.update_posteriors(ns.namespace_id, "ret", "fuse", [update(success=0)], 2 * DAY)  # decay 0.5^2
        got = storage.get_posteriors(ns.namespace_id, "ret", "fuse", [("global", "all")])[("global", "all")][
            "leg-a"
        ]
        assert got.alpha == pytest.approx(1.0 + 3.0 * 0.25) and got.interactions == 2.0

    def test_concurrent_updates_through_several_instances_all_count(
        self, open_storage: Callable[[], Storage], ns: Namespace
    ) -> None:
        instances = [open_storage() for _ in range(4)]

        def add(s: Storage) -> None:
            for _ in range(10):
                s.update_posteriors(
                    ns.namespace_id, "ret", "fuse", [update(), update(uri="leg-b", success=0, failure=1)], 5.0
                )

        threads = [threading.Thread(target=add, args=(s,)) for s in instances]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = instances[0].get_posteriors(ns.namespace_id, "ret", "fuse", [("global", "all")])[
            ("global", "all")
        ]
        assert got["leg-a"].interactions == 40.0 and got["leg-a"].alpha == 41.0
        assert got["leg-b"].beta == 41.0

    def test_posteriors_are_listed_per_scope_in_order_and_stay_in_their_namespace(
        self, storage: Storage, ns: Namespace, other_ns: Namespace
    ) -> None:
        storage.update_posteriors(ns.namespace_id, "ret", "s2", [update("b"), update("a", uri="leg-b")], 1.0)
        storage.update_posteriors(ns.namespace_id, "ret", "s1", [update("z")], 1.0)
        storage.update_posteriors(ns.namespace_id, "other", "s1", [update()], 1.0)
        listed = [
            (s, lv, k, p.feature_uri) for s, lv, k, p in storage.list_posteriors(ns.namespace_id, "ret")
        ]
        assert listed == [
            ("s1", "global", "z", "leg-a"),
            ("s2", "global", "a", "leg-b"),
            ("s2", "global", "b", "leg-a"),
        ]
        assert storage.list_posteriors(other_ns.namespace_id, "ret") == []


def dataset(ns: Namespace, name: str, minutes: float = 0) -> EvaluationDataset:
    at = T0 + timedelta(minutes=minutes)
    queries = [{"query_id": "q1", "query_input": {"query": "Ünïcode"}, "relevant_documents": ["d1"],
                "relevance_scores": {"d1": 2}}]  # fmt: skip
    return EvaluationDataset(new_id("ds"), ns.namespace_id, name, "about it", queries, {"v": 1}, at, at)


def run(ns: Namespace, ds: EvaluationDataset, minutes: float = 0, status: str = "pending") -> EvaluationRun:
    at = T0 + timedelta(minutes=minutes)
    return EvaluationRun(
        new_id("eval"), ns.namespace_id, "ret_a", 3, ds.dataset_id, ds.dataset_name,
        {"k_values": [1, 10], "metrics": ["ndcg"]}, status, at, at,
    )  # fmt: skip


class EvaluationStoreContract(NamespacedContract):
    def test_a_dataset_is_found_by_id_and_by_name_with_every_field(
        self, storage: Storage, ns: Namespace
    ) -> None:
        ds = dataset(ns, "gold")
        storage.create_dataset(ds)
        assert storage.get_dataset(ns.namespace_id, ds.dataset_id) == ds
        assert storage.get_dataset(ns.namespace_id, "gold") == ds

    def test_a_duplicate_dataset_name_is_refused_in_a_namespace_only(
        self, storage: Storage, ns: Namespace, other_ns: Namespace
    ) -> None:
        storage.create_dataset(dataset(ns, "gold"))
        with pytest.raises(AlreadyExistsError):
            storage.create_dataset(dataset(ns, "gold"))
        storage.create_dataset(dataset(other_ns, "gold"))
        assert storage.list_datasets(ns.namespace_id, 10, 0)[1] == 1

    def test_datasets_are_listed_newest_first_with_the_total_and_deleted(
        self, storage: Storage, ns: Namespace
    ) -> None:
        made = [dataset(ns, f"d{i}", minutes=i) for i in range(3)]
        for ds in made:
            storage.create_dataset(ds)
        page, total = storage.list_datasets(ns.namespace_id, 2, 0)
        assert total == 3 and [d.dataset_id for d in page] == [made[2].dataset_id, made[1].dataset_id]
        assert storage.delete_dataset(ns.namespace_id, made[0].dataset_id) is True
        assert storage.delete_dataset(ns.namespace_id, made[0].dataset_id) is False
        assert storage.list_datasets(ns.namespace_id, 10, 0)[1] == 2

    def test_a_run_is_saved_replaced_and_read_back(self, storage: Storage, ns: Namespace) -> None:
        ds = dataset(ns, "gold")
        first = run(ns, ds)
        storage.save_evaluation(first)
        assert storage.get_evaluation(ns.namespace_id, first.evaluation_id) == first
        done = replace(first, status="completed", completed_at=T0 + timedelta(minutes=5),
                       results={"overall_metrics": {"ndcg@10": 0.5}}, progress={"done": 1})  # fmt: skip
        storage.save_evaluation(done)
        assert storage.get_evaluation(ns.namespace_id, first.evaluation_id) == done

    def test_runs_are_listed_per_retriever_newest_first_and_filtered(
        self, storage: Storage, ns: Namespace
    ) -> None:
        gold, silver = dataset(ns, "gold"), dataset(ns, "silver")
        runs = [run(ns, gold, 0, "completed"), run(ns, silver, 1, "failed"), run(ns, gold, 2, "pending")]
        for r in runs:
            storage.save_evaluation(r)
        storage.save_evaluation(replace(run(ns, gold, 3), retriever_id="ret_other"))

        def listed(status: str | None = None, name: str | None = None) -> list[str]:
            found, total = storage.list_evaluations(ns.namespace_id, "ret_a", status, name, 10, 0)
            assert total == len(found)
            return [r.evaluation_id for r in found]

        assert listed() == [runs[2].evaluation_id, runs[1].evaluation_id, runs[0].evaluation_id]
        assert listed(status="failed") == [runs[1].evaluation_id]
        assert listed(name="gold") == [runs[2].evaluation_id, runs[0].evaluation_id]

    def test_unfinished_runs_of_every_namespace_are_found_for_recovery(
        self, storage: Storage, ns: Namespace, other_ns: Namespace
    ) -> None:
        ds = dataset(ns, "gold")
        pending, running = run(ns, ds, status="pending"), run(other_ns, ds, status="in_progress")
        for r in (pending, running, run(ns, ds, status="completed"), run(ns, ds, status="failed")):
            storage.save_evaluation(r)
        assert {r.evaluation_id for r in storage.unfinished_evaluations()} == {
            pending.evaluation_id,
            running.evaluation_id,
        }

    def test_deleting_the_namespace_deletes_its_datasets_and_runs(
        self, storage: Storage, ns: Namespace
    ) -> None:
        ds = dataset(ns, "gold")
        storage.create_dataset(ds)
        r = run(ns, ds)
        storage.save_evaluation(r)
        storage.delete_namespace(ns.namespace_id)
        assert storage.get_dataset(ns.namespace_id, "gold") is None
        assert storage.get_evaluation(ns.namespace_id, r.evaluation_id) is None
