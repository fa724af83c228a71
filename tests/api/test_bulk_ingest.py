"""Bulk ingest: NDJSON streamed uploads, base64 float32 vectors, and the body limit on chunked bodies."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from helpers import served, settings_for
from siftline.features.embedder import TextEmbedder

DOCS = "/v1/collections/vecs/documents"
DIM = 8


@pytest.fixture
def vecs(tmp_path: Path, embedder: TextEmbedder) -> Iterator[TestClient]:
    settings = settings_for(tmp_path / "data", max_batch_documents=500, max_request_bytes=20_000)
    with served(settings, embedder) as (http, _):
        http.post(
            "/v1/collections",
            json={"collection_name": "vecs", "vector_configs": [{"name": "emb", "dimension": DIM}]},
        ).raise_for_status()
        yield http


def _doc(i: int, vector: Any) -> dict[str, Any]:
    return {"document_id": f"d{i}", "n": i, "vectors": {"emb": vector}}


def _b64(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def _ndjson(docs: list[Any]) -> Iterator[bytes]:
    """The upload in pieces that cut lines in half (as a network would), without a Content-Length."""
    body = b"\n".join(orjson.dumps(d) if not isinstance(d, bytes) else d for d in docs) + b"\n"
    for start in range(0, len(body), 777):
        yield body[start : start + 777]


def _count(http: TestClient) -> int:
    return int(http.get(f"{DOCS}/count").json()["count"])


def test_an_ndjson_upload_of_any_size_is_written_in_chunks(vecs: TestClient) -> None:
    rng = np.random.default_rng(1)
    docs = [_doc(i, _b64(rng.standard_normal(DIM))) for i in range(1_234)]  # > 2 chunks, > body limit
    response = vecs.post(
        f"{DOCS}/batch", content=_ndjson(docs), headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["count"] == 1_234 and out["document_ids"][:2] == ["d0", "d1"]
    assert _count(vecs) == 1_234


def test_a_bad_ndjson_line_stops_the_upload_and_says_what_was_written(vecs: TestClient) -> None:
    docs: list[Any] = [_doc(i, [0.5] * DIM) for i in range(700)]
    docs[600] = b'{"document_id": "broken", '
    response = vecs.post(
        f"{DOCS}/batch", content=_ndjson(docs), headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["details"]["written"] == 500 and error["details"]["first_line_not_written"] == 501
    assert "line 601" in error["message"] and "500 documents before line 501 were written" in error["message"]
    assert _count(vecs) == 500  # the first chunk (one transaction) stays; nothing after it


def test_a_refused_ndjson_chunk_writes_nothing_of_that_chunk(vecs: TestClient) -> None:
    docs = [_doc(i, [0.5] * DIM) for i in range(800)]
    docs[650]["vectors"]["emb"] = [0.5] * (DIM + 1)
    response = vecs.post(
        f"{DOCS}/batch", content=_ndjson(docs), headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["details"]["errors"][0]["loc"] == ["body", "documents", 150, "vectors", "emb"]
    assert error["details"]["written"] == 500
    assert _count(vecs) == 500


def test_base64_float32_vectors_are_stored_exactly_like_number_lists(vecs: TestClient) -> None:
    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((3, DIM)).astype(np.float32)
    body = {"documents": [_doc(0, vectors[0].tolist()), _doc(1, _b64(vectors[1])), _doc(2, _b64(vectors[2]))]}
    vecs.post(f"{DOCS}/batch", json=body).raise_for_status()
    stored = vecs.post(f"{DOCS}/list", json={"return_vectors": True, "limit": 10}).json()["results"]
    by_id = {d["document_id"]: np.array(d["vectors"]["emb"], dtype=np.float32) for d in stored}
    for i in range(3):  # cosine features store unit vectors
        expected = vectors[i] / np.linalg.norm(vectors[i])
        np.testing.assert_allclose(by_id[f"d{i}"], expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("vector", "says"),
    [
        ("not base64 at all!", "base64"),
        (base64.b64encode(b"\x00" * (4 * DIM + 2)).decode(), "base64"),  # not a whole number of floats
        (_b64(np.ones(DIM + 1)), "dimensions"),
        (_b64(np.array([np.nan] * DIM)), "finite"),
    ],
)
def test_a_bad_base64_vector_is_422_at_its_location_and_nothing_is_written(
    vecs: TestClient, vector: str, says: str
) -> None:
    body = {"documents": [_doc(0, [0.1] * DIM), _doc(1, vector)]}
    response = vecs.post(f"{DOCS}/batch", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["details"]["errors"][0]["loc"] == ["body", "documents", 1, "vectors", "emb"]
    assert says in error["message"]
    assert _count(vecs) == 0


def test_a_chunked_json_body_over_the_limit_is_400_without_a_content_length(vecs: TestClient) -> None:
    docs = [_doc(i, [0.25] * DIM) for i in range(400)]  # about 30 kB, over the 20 kB limit
    body = orjson.dumps({"documents": docs})

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    response = vecs.post(f"{DOCS}/batch", content=pieces(), headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "SIFTLINE_MAX_REQUEST_BYTES" in response.json()["error"]["message"]
    assert _count(vecs) == 0
