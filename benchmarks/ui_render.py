"""Server time of the execution inspector's pages (/ui), in process: an execution that returned 500
documents with their score lineage (explain: true), a list page of 50 executions, and the comparison of
two executions of 500 documents each (different queries: most documents moved, some new and dropped).

    python benchmarks/ui_render.py [--runs 30] [--no-write]

Each page is asked ``--runs`` times through an in-process client (routing, session check, storage reads,
rendering; no network), after one warm-up; the medians go to docs/BENCHMARKS.md. Target: the execution
page and the compare page of 500 documents in at most 200 ms each.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from report import write_section
from siftline.api.app import create_app
from siftline.config import Settings
from siftline.service.container import Services

KEY = "sk_test_ui_render_benchmark_0123456789"
DOCS = 600
RETURNED = 500
DIM = 16
STAGES = [
    {"stage_name": "search", "config": {"stage_id": "feature_search", "parameters": {
        "searches": [{"feature_uri": "mixpeek://vectors@v1/a", "query": {"input_mode": "vector", "value": "{{INPUT.a}}"},
                      "top_k": DOCS},
                     {"feature_uri": "mixpeek://vectors@v1/b", "query": {"input_mode": "vector", "value": "{{INPUT.b}}"},
                      "top_k": DOCS}],
        "fusion": "rrf", "final_top_k": RETURNED}}},
    {"stage_name": "normalize", "config": {"stage_id": "score_normalize", "parameters": {"method": "min_max"}}},
    {"stage_name": "by_year", "config": {"stage_id": "sort_attribute", "parameters": {"field": "year", "direction": "desc"}}},
    {"stage_name": "top", "config": {"stage_id": "limit", "parameters": {"limit": RETURNED}}},
]  # fmt: skip


def seed(client: TestClient, rng: np.random.Generator) -> tuple[str, str, str]:
    """A collection of DOCS documents with two vectors each, a retriever, 60 executions; returns the
    retriever id, the id of an explained execution that returned RETURNED documents, and the id of the
    plain execution before it (another query, RETURNED documents too)."""
    collection = {"collection_name": "bench", "vector_configs": [
        {"name": "a", "dimension": DIM}, {"name": "b", "dimension": DIM}]}  # fmt: skip
    assert client.post("/v1/collections", json=collection).status_code == 200
    docs = [
        {"document_id": f"doc-{i:04d}", "title": f"Document number {i}", "category": ["news", "blog", "paper"][i % 3],
         "year": 2000 + i % 25, "vectors": {"a": rng.normal(size=DIM).tolist(), "b": rng.normal(size=DIM).tolist()}}
        for i in range(DOCS)
    ]  # fmt: skip
    assert client.post("/v1/collections/bench/documents/batch", json={"documents": docs}).status_code == 200
    body = {"retriever_name": "bench", "collection_identifiers": ["bench"], "stages": STAGES,
            "input_schema": {"a": {"type": "array"}, "b": {"type": "array"}}}  # fmt: skip
    found = client.post("/v1/retrievers", json=body)
    assert found.status_code == 200, found.text
    rid = found.json()["retriever_id"]

    def run(explain: bool) -> dict:
        inputs = {"a": rng.normal(size=DIM).tolist(), "b": rng.normal(size=DIM).tolist()}
        response = client.post(
            f"/v1/retrievers/{rid}/execute", json={"inputs": inputs, "limit": RETURNED, "explain": explain}
        )
        assert response.status_code == 200, response.text
        return response.json()

    plain = [run(False) for _ in range(59)]
    explained = run(True)
    assert len(explained["documents"]) == len(plain[-1]["documents"]) == RETURNED
    return rid, explained["execution_id"], plain[-1]["execution_id"]


def sign_in(client: TestClient) -> None:
    form = client.get("/ui/login").text
    token = re.search(r'name="login_token" value="([^"]+)"', form)
    assert token is not None
    done = client.post("/ui/login", data={"login_token": token.group(1), "api_key": KEY, "namespace": "default"},
                       follow_redirects=False)  # fmt: skip
    assert done.status_code == 303, done.text


def timed(client: TestClient, path: str, runs: int) -> tuple[float, int]:
    client.get(path)  # warm-up: templates compiled, caches filled
    samples = []
    size = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, (path, response.status_code)
        size = response.num_bytes_downloaded  # as sent: large pages go gzip-compressed
    return statistics.median(samples), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", bootstrap_key=KEY)
        services = Services.open(settings)
        try:
            with TestClient(create_app(settings, services)) as client:
                client.headers["Authorization"] = f"Bearer {KEY}"
                _, exec_id, other_id = seed(client, rng)
                diff = client.get(
                    "/v1/retrievers/executions/compare", params={"a": other_id, "b": exec_id}
                ).json()
                del client.headers["Authorization"]
                login = timed(client, "/ui/login", args.runs)  # before signing in: the form itself
                sign_in(client)
                lineage = client.get(f"/ui/api/executions/{exec_id}").json()["documents"][0].get("lineage")
                pages = {
                    f"execution page, {RETURNED} documents with lineage": f"/ui/executions/{exec_id}",
                    "executions list, 50 rows": "/ui/executions?limit=50",
                    "executions list, 50 rows sorted by duration": "/ui/executions?limit=50&sort=duration",
                    "live progress JSON (summary, waterfall, funnel)": f"/ui/api/executions/{exec_id}/live",
                    f"raw record JSON, {RETURNED} documents": f"/ui/api/executions/{exec_id}",
                    f"compare page, two executions of {RETURNED} documents": f"/ui/compare?a={other_id}&b={exec_id}",
                }
                results = {name: timed(client, path, args.runs) for name, path in pages.items()}
                results["sign-in form"] = login
        finally:
            services.close()
    rows = "\n".join(
        f"| {name} | {median:.1f} ms | {size / 1024:,.0f} KiB |" for name, (median, size) in results.items()
    )
    table = (
        "| page (in-process client: routing, session, storage reads, rendering) | median | sent (gzip when large) |\n|---|---|---|\n"
        f"{rows}\n\n"
        f"{args.runs} requests per page after a warm-up; documents {'with' if lineage else 'without'} score lineage. "
        f"The compared executions ran different queries: {len(diff['moved'])} documents moved, {len(diff['new'])} new, "
        f"{len(diff['dropped'])} dropped, {len(diff['unchanged'])} unchanged (a line or a mark for each). "
        "Target: the execution page and the compare page of 500 documents within 200 ms each.\n"
    )
    print(table)
    if not args.no_write:
        write_section(
            "ui-render",
            "Execution inspector: server time per page",
            f"python benchmarks/ui_render.py --runs {args.runs}",
            table,
        )


if __name__ == "__main__":
    main()
