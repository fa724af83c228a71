"""Small writes committed together: each request keeps its own outcome, and nothing is lost."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from siftline.errors import AlreadyExistsError, StorageError
from siftline.models import Collection, DocumentWrite
from siftline.storage.sqlite.backend import SQLiteStorage
from siftline.storage.sqlite.write_combiner import Conflict, WriteCombiner
from siftline.testing import fresh, make_write, new_collection, new_namespace
from siftline.testing.contract import TEXT_BM25


def test_concurrent_small_writes_each_keep_their_outcome(tmp_path: Path) -> None:
    """24 threads write single documents at once through a real SQLite backend: distinct creates all
    land, racing creates of one id give exactly one success and AlreadyExistsError to the rest, replaces
    land, and every written document is stored and searchable (vectors and BM25)."""
    storage = SQLiteStorage(tmp_path / "siftline.db", tmp_path / "vectors")
    try:
        collection = new_collection(storage, new_namespace(storage, "w"), "w")
        storage.put_documents(
            collection, [make_write(collection, "shared-old", text="old words")], replace=False
        )
        outcomes: dict[str, list[str]] = {}
        lock = threading.Lock()
        start = threading.Barrier(24)

        def worker(n: int) -> None:
            start.wait()
            for k in range(10):
                current = fresh(storage, collection)
                doc_id, replace = (f"w{n}-{k}", False) if k % 3 else ("racing", False)
                if k == 9:
                    doc_id, replace = "shared-old", True
                write = make_write(
                    current, doc_id, text=f"worker{n} item{k} zebra", seed=n * 100 + k, n=n, k=k
                )
                try:
                    storage.put_documents(current, [write], replace=replace)
                    result = "ok"
                except AlreadyExistsError:
                    result = "exists"
                with lock:
                    outcomes.setdefault(doc_id, []).append(result)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert outcomes["racing"].count("ok") == 1 and outcomes["racing"].count("exists") == 24 * 3 - 1
        assert set(outcomes["shared-old"]) == {"ok"}
        created = [i for i, r in outcomes.items() if i.startswith("w")]
        assert all(r == ["ok"] for i, r in outcomes.items() if i.startswith("w")) and len(created) == 24 * 6
        current = fresh(storage, collection)
        stored = {
            d.document_id: d for d in storage.get_documents(current, [*created, "racing", "shared-old"])
        }
        assert len(stored) == len(created) + 2
        assert all(stored[i].payload["n"] == int(i[1:].split("-")[0]) for i in created)
        assert storage.count_documents(current) == len(created) + 2
        hits = storage.text_search(current, TEXT_BM25, "zebra", 1000)
        assert {d for d, _ in hits} == {*created, "racing", "shared-old"}
        for i in created[:10]:  # each vector is in the index under its own document
            vector = next(iter(stored[i].vectors.values())) if stored[i].vectors else None
            assert vector is None or i in {
                d for d, _ in storage.vector_search(current, collection.dense_features[0], vector, 3)
            }
    finally:
        storage.close()


class _Recorder:
    """A stand-in for the backend's transaction (the layer below the combiner)."""

    def __init__(self, existing: set[str] = frozenset(), fail_on: str | None = None) -> None:  # type: ignore[assignment]
        self.existing = set(existing)
        self.fail_on = fail_on
        self.calls: list[list[str]] = []

    def __call__(
        self, collection: Collection, writes: Sequence[DocumentWrite], replace: bool, new: set[str]
    ) -> None:
        ids = [w.document_id for w in writes]
        self.calls.append(ids)
        if clash := new & self.existing:
            raise Conflict(clash)
        if self.fail_on in ids:
            raise StorageError("disk full")
        self.existing |= set(ids)


def _write(doc_id: str) -> DocumentWrite:
    return DocumentWrite(doc_id, {}, {}, {}, {})


def test_a_conflict_or_a_failure_reaches_only_its_own_request(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "siftline.db", tmp_path / "vectors")
    collection = new_collection(storage, new_namespace(storage, "c"), "c", features=(TEXT_BM25,))
    storage.close()
    put = _Recorder(existing={"taken"}, fail_on="bad")
    combiner = WriteCombiner(put)
    # queue three requests as if they had arrived while another thread led, then lead once
    from siftline.storage.sqlite import write_combiner as wc

    tickets = [wc._Ticket(collection, [_write(i)], False) for i in ("a", "taken", "bad", "b")]
    combiner._queue = list(tickets)
    combiner._lead()
    assert [t.error is None for t in tickets] == [True, False, False, True]
    assert isinstance(tickets[1].error, AlreadyExistsError) and isinstance(tickets[2].error, StorageError)
    assert put.existing >= {"a", "b"} and "bad" not in put.existing
    assert put.calls[0] == ["a", "taken", "bad", "b"]  # first tried together


def test_two_writes_of_one_id_never_share_a_transaction() -> None:
    from siftline.storage.sqlite import write_combiner as wc

    col = object()
    tickets = [wc._Ticket(col, [_write(i)], True) for i in ("x", "y", "x", "z")]  # type: ignore[arg-type]
    group, rest = wc._next_group(tickets)
    assert [t.writes[0].document_id for t in group] == ["x", "y"] and len(rest) == 2


@pytest.mark.parametrize("size", [wc_size for wc_size in (9, 50)])
def test_large_batches_go_straight_through(size: int) -> None:
    put = _Recorder()
    WriteCombiner(put).write(object(), [_write(f"d{i}") for i in range(size)], False)  # type: ignore[arg-type]
    assert put.calls == [[f"d{i}" for i in range(size)]]
