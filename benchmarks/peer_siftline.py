"""Siftline over HTTP for the peers benchmark: a real server (``python -m siftline serve``) on a fresh
data directory, driven as a client would.

- ``load``: every document (text, metadata, 384-d vector) as NDJSON (``application/x-ndjson``, one
  document a line) to POST …/documents/batch, ``--batch`` documents a request over ``--clients``
  connections, vectors as base64 float32; every body is encoded before the clock starts.
- ``index``: the time until indexed (GET …/vector-index polled every 0.2 s until nothing is pending or
  building, as ``scale.py`` does); then the same documents again into a second collection with the
  vectors as JSON number lists (what the SDK sends), its docs/s and time until indexed, and that
  collection is deleted before any query runs.
- ``search``: ad hoc POST /v1/retrievers/execute bodies (``scale.request_body``, encoded before the
  clock) on one keep-alive ``http.client`` connection; the search path of each search (hnsw / exact /
  bm25) is taken from the stage statistics.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import threading
import time
from typing import Any

import httpx
import orjson

from peer_systems import System
from scale import (
    COLLECTION,
    NUMPY,
    QUERY_TYPES,
    RawClient,
    checked,
    dense_status,
    doc_index,
    drain_stderr,
    progress,
    request_body,
    server_env,
    settled,
    wait_indexed,
)
from siftline.testing.server import start_with_key

NDJSON = "application/x-ndjson"
KIND_QUERY = {"dense": "dense", "filtered": "dense + 10% filter", "bm25": "BM25", "hybrid": "hybrid"}


class Siftline(System):
    name, title = "siftline", "Siftline over HTTP"
    kinds = ("dense", "filtered", "bm25", "hybrid")

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.env = server_env(ctx.args)
        self.server, key = start_with_key(ctx.tmp / "siftline-data", env=self.env)
        self.stderr_tail = drain_stderr(self.server)
        headers = {"Authorization": f"Bearer {key}"}
        self.http = httpx.Client(base_url=self.server.url, headers=headers, timeout=600)
        self.raw = RawClient(self.server.url, key)
        self.bodies: list[bytes] = []
        self.paths: dict[str, dict[int, list[str]]] = collections.defaultdict(dict)
        self.efs: dict[str, set[int]] = collections.defaultdict(set)  # ef_search the searches reported

    # -- loading ---------------------------------------------------------------------------------

    def _bodies(self, vector_format: str) -> list[tuple[bytes, int]]:
        batch, bodies, lines = self.ctx.args.batch, [], []
        corpus = self.ctx.corpus
        with progress(f"Siftline: encode NDJSON bodies ({vector_format} vectors)", len(corpus)) as advance:
            for chunk in corpus.chunks:
                lines += [orjson.dumps(d, option=NUMPY) for d in chunk.documents(vector_format=vector_format)]
                while len(lines) >= batch or (lines and chunk is corpus.chunks[-1]):
                    bodies.append((b"\n".join(lines[:batch]) + b"\n", len(lines[:batch])))
                    lines = lines[batch:]
                advance(len(chunk))
        return bodies

    def _post_all(self, collection: str, vector_format: str) -> dict[str, Any]:
        bodies, clients = self._bodies(vector_format), self.ctx.args.clients
        local = threading.local()

        def post(item: tuple[bytes, int]) -> int:
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = httpx.Client(
                    base_url=self.http.base_url, headers=self.http.headers, timeout=600
                )
            checked(client.post(f"/v1/collections/{collection}/documents/batch", content=item[0],
                                headers={"Content-Type": NDJSON}))  # fmt: skip
            return item[1]

        n, sent = len(self.ctx.corpus), 0
        label = f"Siftline: NDJSON load into '{collection}' ({vector_format} vectors, {clients} connections)"
        with progress(label, n) as advance:
            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                for count in pool.map(post, bodies):
                    sent += count
                    advance(count)
            seconds = time.perf_counter() - t0
        if sent != n:
            raise RuntimeError(f"sent {sent} documents, expected {n}")
        return {"seconds": round(seconds, 2), "docs_per_s": round(n / seconds, 1), "requests": len(bodies),
                "vector_format": vector_format, "clients": clients,
                "how": f"NDJSON, {self.ctx.args.batch:,} documents a request"}  # fmt: skip

    def load(self) -> dict[str, Any]:
        checked(self.http.post("/v1/collections", json=COLLECTION))
        return self._post_all(str(COLLECTION["collection_name"]), "b64")

    def index(self) -> dict[str, Any]:
        indexed = wait_indexed(self.http, self.ctx.args.poll_timeout, build_now=False)
        feature = dense_status(indexed.status) or {}
        out: dict[str, Any] = {"seconds": round(indexed.seconds, 2), "method": indexed.method,
                               "dense_feature": feature}  # fmt: skip
        if self.ctx.args.no_json_lists:
            return out
        second = {**COLLECTION, "collection_name": "synthetic_json"}
        checked(self.http.post("/v1/collections", json=second))
        out["json_lists"] = self._post_all("synthetic_json", "json")
        out["json_lists"]["until_indexed_s"] = self._poll("synthetic_json")
        checked(self.http.delete("/v1/collections/synthetic_json"))
        return out

    def _poll(self, collection: str) -> float:
        t0, path = time.perf_counter(), f"/v1/collections/{collection}/vector-index"
        while not settled(checked(self.http.get(path)).json()):
            if time.perf_counter() - t0 > self.ctx.args.poll_timeout:
                raise RuntimeError(f"{collection}: not indexed after {self.ctx.args.poll_timeout:.0f} s")
            time.sleep(0.2)
        return round(time.perf_counter() - t0, 2)

    # -- queries ---------------------------------------------------------------------------------

    def ready(self, kind: str) -> None:
        qt = next(q for q in QUERY_TYPES if q.name == KIND_QUERY[kind])
        q = self.ctx.queries
        self.bodies = [request_body(qt, v, t) for v, t in zip(q.vectors, q.texts, strict=True)]

    def search(self, kind: str, i: int) -> list[int]:
        data = orjson.loads(self.raw.request("POST", "/v1/retrievers/execute", self.bodies[i]))
        if data.get("status") != "completed" or data.get("error"):
            raise RuntimeError(f"execute failed: {data.get('error')}")
        stage = data["stage_statistics"]["stages"]["search"]
        searches = stage.get("metadata", {}).get("searches", [])
        self.paths[kind][i] = [str(s.get("path", "?")) for s in searches]
        self.efs[kind].update(s["ef_search"] for s in searches if s.get("ef_search") is not None)
        return [doc_index(d["document_id"]) for d in data["documents"]]

    def extra(self, kind: str, measured: range) -> dict[str, Any]:
        legs = collections.Counter("+".join(self.paths[kind].get(i, ["?"])) for i in measured)
        return {"paths": dict(legs), "ef_search": sorted(self.efs[kind])}

    def close(self) -> None:
        for closing in (self.raw.close, self.http.close, self.server.stop):  # best effort, the stop last
            with contextlib.suppress(Exception):
                closing()

    def stderr(self) -> str:
        return "\n".join(self.stderr_tail)
