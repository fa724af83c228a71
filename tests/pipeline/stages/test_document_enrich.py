"""document_enrich against real SQLite: join semantics, batching (storage calls counted), validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest

from siftline.errors import NotFoundError
from siftline.models import Collection
from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.document_enrich import DocumentEnrich, DocumentEnrichParams
from siftline.service import collections
from siftline.service.documents import DocumentService
from siftline.service.namespaces import ensure_namespace
from siftline.storage.sqlite.backend import SQLiteStorage

PRODUCTS = [
    {"document_id": "p1", "sku": "A-1", "name": "lamp", "price": 20, "spec": {"w": 3, "h": 9}},
    {"document_id": "p2", "sku": "B-2", "name": "desk", "price": 150, "spec": {"w": 120}},
    {"document_id": "p3", "sku": "a-1", "name": "lower-case sku", "price": 1},
    {"document_id": "p4", "sku": 7, "name": "numbered", "price": 7},
]


class CountingStorage:
    """The real storage, counting the document reads a stage makes."""

    def __init__(self, inner: SQLiteStorage) -> None:
        self.inner = inner
        self.calls = 0

    def get_collection(self, namespace_id: str, id_or_name: str) -> Collection | None:
        return self.inner.get_collection(namespace_id, id_or_name)

    def list_documents(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.inner.list_documents(*args, **kwargs)

    def get_documents(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.inner.get_documents(*args, **kwargs)


@pytest.fixture
def world(tmp_path: Path) -> tuple[CountingStorage, Collection, Collection]:
    storage = SQLiteStorage(tmp_path / "siftline.db", tmp_path / "vectors")
    ns = ensure_namespace(storage, "default")
    vec = [{"name": "v", "dimension": 2}]
    products = collections.create(storage, ns, collection_name="products", vector_configs=vec)
    orders = collections.create(storage, ns, collection_name="orders", vector_configs=vec)
    many = [{"document_id": f"x{i}", "sku": f"X-{i}", "n": i} for i in range(1200)]
    DocumentService(storage, None, 5000).create_batch(products, {"documents": PRODUCTS + many})  # type: ignore[arg-type]
    return CountingStorage(storage), products, orders


def ctx_for(storage: CountingStorage, orders: Collection) -> ExecutionContext:
    return ExecutionContext(storage=storage, embedder=None, collections=[orders])  # type: ignore[arg-type]


def cand(doc_id: str, score: float = 1.0, **fields: Any) -> Candidate:
    return Candidate(doc_id, "col_orders", score, fields)


def run(world: Any, cands: list[Candidate], **params: Any) -> tuple[list[Candidate], ExecutionContext]:
    storage, _, orders = world
    ctx = ctx_for(storage, orders)
    params.setdefault("target_collection_id", "products")
    stage = DocumentEnrich("enrich", DocumentEnrichParams(**params))
    return stage.run(ctx, cands), ctx


def test_enrich_at_root_with_selected_fields(world: Any) -> None:
    cands = [cand("o1", sku="A-1", name="old"), cand("o2", sku="Z-9"), cand("o3", sku="B-2")]
    out, ctx = run(world, cands, source_field="sku", target_field="sku", fields_to_merge=["name", "spec.w"])
    assert [c.document_id for c in out] == ["o1", "o2", "o3"]
    assert out[0].fields == {"sku": "A-1", "name": "lamp", "spec": {"w": 3}}  # case-sensitive: not p3
    assert out[1].fields == {"sku": "Z-9"}
    assert out[2].fields["name"] == "desk"
    assert out[0].collection_id == "col_orders" and out[0].document_id == "o1"
    assert ctx.metadata["matched"] == 2 and ctx.metadata["missing"] == 1
    assert ctx.metadata["match_rate"] == pytest.approx(2 / 3)
    assert ctx.metadata["lookups"] == 1


def test_output_field_nests_every_user_field(world: Any) -> None:
    out, _ = run(world, [cand("o1", ref="p2")], source_field="ref", output_field="enrichments.product")
    assert out[0].fields["enrichments"]["product"] == {
        "sku": "B-2",
        "name": "desk",
        "price": 150,
        "spec": {"w": 120},
    }


def test_document_id_target_uses_get_documents_and_numbers_match(world: Any) -> None:
    storage = world[0]
    out, ctx = run(world, [cand("o1", ref="p1"), cand("o2", ref="nope")], source_field="ref")
    assert out[0].fields["name"] == "lamp" and "name" not in out[1].fields
    assert ctx.metadata["lookups"] == 1 and storage.calls == 1
    out, _ = run(world, [cand("o3", n=7.0)], source_field="n", target_field="sku", fields_to_merge=["name"])
    assert out[0].fields["name"] == "numbered"


def test_append_strategy_accumulates_a_list(world: Any) -> None:
    cands = [cand("o1", sku="A-1", links=[{"document_id": "old"}])]
    params = {"source_field": "sku", "target_field": "sku", "fields_to_merge": ["price"]}
    out, _ = run(world, cands, strategy="append", output_field="links", **params)
    assert out[0].fields["links"] == [
        {"document_id": "old"},
        {"document_id": "p1", "collection_id": world[1].collection_id, "price": 20},
    ]


def test_allow_missing_false_drops_and_when_skips(world: Any) -> None:
    cands = [cand("o1", sku="A-1", kind="x"), cand("o2", sku="none", kind="x"), cand("o3", sku="none")]
    when = {"field": "kind", "operator": "eq", "value": "x"}
    out, ctx = run(world, cands, source_field="sku", target_field="sku", allow_missing=False, when=when)
    assert [c.document_id for c in out] == ["o1", "o3"]
    assert out[1].fields == {"sku": "none"}
    assert ctx.metadata["skipped_by_when"] == 1 and ctx.metadata["dropped"] == 1
    assert ctx.metadata["match_rate"] == 0.5


def test_thousand_candidates_few_round_trips(world: Any) -> None:
    storage = world[0]
    cands = [cand(f"o{i}", sku=f"X-{i % 1100}") for i in range(1000)]
    cands += [cand("miss", sku="nothing")]
    out, ctx = run(world, cands, source_field="sku", target_field="sku", fields_to_merge=["n"])
    assert storage.calls <= 5 and ctx.metadata["lookups"] == storage.calls
    assert all(c.fields.get("n") == int(c.document_id[1:]) % 1100 for c in out[:1000])
    assert ctx.metadata["matched"] == 1000 and ctx.metadata["missing"] == 1
    assert ctx.metadata["match_rate"] == pytest.approx(1000 / 1001, abs=1e-6)


def test_paging_when_more_than_a_page_matches(world: Any) -> None:
    storage = world[0]
    cands = [cand(f"o{i}", sku=f"X-{i}") for i in range(1200)]
    out, ctx = run(world, cands, source_field="sku", target_field="sku", fields_to_merge=["n"])
    assert ctx.metadata["matched"] == 1200 and storage.calls <= 5
    assert out[1199].fields["n"] == 1199


def test_unknown_target_collection(world: Any) -> None:
    with pytest.raises(NotFoundError):
        run(world, [cand("o1", sku="A-1")], target_collection_id="nowhere", source_field="sku")


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"target_collection_id": ""},
        {"target_collection_id": "p", "strategy": "replace"},
        {"target_collection_id": "p", "strategy": "append"},
        {"target_collection_id": "p", "when": {"field": "a", "operator": "bogus", "value": 1}},
        {"target_collection_id": "p", "retriever_id": "r"},
        {"target_collection_id": "p", "allow_missing": "maybe"},
    ],
)
def test_bad_params(params: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        DocumentEnrichParams(**params)
