"""Siftline at scale: ingest, time until indexed, query latency, recall@10 and memory for N documents.

A real server (``python -m siftline serve``) on 127.0.0.1 over a fresh data directory gets N synthetic
documents (``benchmarks/synthetic.py``: 384-d vectors with cluster structure, Zipf text, metadata) with
their vectors supplied, so no embedding runs. Figures:

1. Ingest docs/s: POST …/documents/batch in batches of ``--batch``, every body encoded (orjson) before
   the clock starts, so the figure is the server's rate (documents over the wall-clock time of the
   whole load). Vectors go as base64 float32 strings (``--vector-format b64``, the bulk-load fast path)
   or as JSON number lists (``json``), over ``--clients`` (2) concurrent connections. Then the time
   until indexed: GET …/vector-index polled until every feature has ``pending == 0`` and
   ``building == false`` (a feature below the HNSW threshold reports nothing pending); after ``--poll-timeout`` s, or at once with
   ``--build-now``, POST …/vector-index/build ``{"wait": true}``. The report says which.
2. Latency over HTTP, one keep-alive client (http.client: ~0.1 ms of client cost a request), ad hoc POST /v1/retrievers/execute, ``--queries`` queries
   per type after 20 warm-up queries: dense (top_k 10), BM25 (top_k 10), hybrid (dense and BM25 legs
   of top_k 50 each, RRF k=60, final_top_k 10), hybrid with a 10 % and a 1 % filter, and dense with a
   10 % and a 1 % filter. p50/p95/p99 and the search path each search took (``hnsw``/``exact``/``bm25``,
   from the stage statistics).
3. recall@10 of each dense query against exact search computed here with numpy (for filtered
   queries: the exact top 10 among the documents passing the filter). A hybrid query's dense leg is
   judged by the dense-only query with the same filter.
4. The server's peak RSS (VmHWM of /proc/<pid>/status at the end) and VmRSS sampled during ingest.
5. An in-process baseline: the same dense queries on faiss ``IndexHNSWFlat`` (inner product) with the
   server's M / efConstruction / efSearch, one thread, one query at a time; and the HTTP floor
   (GET /v1/health on the same client); and the same dense queries through Siftline's executor in
   this process (no HTTP), over the server's data once it has stopped. Every ratio is printed. The
   exact ground truth and the faiss index are made after the server has stopped, from the vectors
   regenerated chunk by chunk.

Results are printed (and, unless ``--no-write``, written to docs/BENCHMARKS.md as section
``scale-<size>``); ``--json PATH`` writes every figure as JSON. Exits 1 when a step failed (the
report still prints, naming it) or recall@10 with the 1 % filter is below 0.95.

    python benchmarks/scale.py --docs 10000                      # ~1 min on 2 cores
    python benchmarks/scale.py --docs 100000                     # ~10 min
    python benchmarks/scale.py --docs 1000000 --tmp-dir /big     # manual: ~1-2 h, a few GB of disk
    python benchmarks/scale.py --docs 10000 --queries 30 --no-write --hnsw-threshold 2000 --json out.json
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import http.client
import os
import shlex
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import httpx
import numpy as np
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from report import percentiles, write_section
from siftline.testing.server import Server, start_with_key
from synthetic import CHUNK, COLLECTION, DENSE_FEATURE, DIM, Chunk, Synthetic

COLL = COLLECTION["collection_name"]
DENSE_URI = f"mixpeek://text_extractor@v1/{DENSE_FEATURE}"
BM25_URI = "mixpeek://text_extractor@v1/bm25"
TOP_K = 10  # documents returned, and each dense-only / BM25-only search's top_k
LEG_TOP_K = 50  # each leg of a hybrid search
RRF_K = 60
WARMUP = 20
FILTERS: dict[str, dict[str, Any]] = {  # metadata fields sit at the document root
    "10%": {"AND": [{"field": "decile", "operator": "eq", "value": 3}]},
    "1%": {"AND": [{"field": "bucket", "operator": "eq", "value": 7}]},
}
ACCEPT_FILTERED_RECALL = 0.95  # recall@10 with the 1 % filter, against exact filtered search
NUMPY = orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True)
class QueryType:
    name: str
    dense: bool
    bm25: bool
    filter: str | None = None

    @property
    def hybrid(self) -> bool:
        return self.dense and self.bm25

    @property
    def subset(self) -> str:
        return self.filter or "all"


QUERY_TYPES = (
    QueryType("dense", True, False),
    QueryType("dense + 10% filter", True, False, "10%"),
    QueryType("dense + 1% filter", True, False, "1%"),
    QueryType("BM25", False, True),
    QueryType("hybrid", True, True),
    QueryType("hybrid + 10% filter", True, True, "10%"),
    QueryType("hybrid + 1% filter", True, True, "1%"),
)


class StepFailed(RuntimeError):
    """A step of the benchmark could not be done (the report names it; the exit status is 1)."""


def checked(response: httpx.Response) -> httpx.Response:
    if response.is_error:
        request = response.request
        raise StepFailed(
            f"{request.method} {request.url.path} -> {response.status_code}: {response.text[:1000]}"
        )
    return response


@contextmanager
def progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A rich bar on a terminal; otherwise (a log, a test) a line every 10 %. Yields ``advance(n)``."""
    if sys.stderr.isatty():
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=Console(stderr=True)) as bar:
            task = bar.add_task(label, total=total)
            yield lambda n: bar.advance(task, n)
        return
    done, t0 = 0, time.perf_counter()

    def advance(n: int) -> None:
        nonlocal done
        before, done = done, done + n
        if total and (done * 10 // total > before * 10 // total):
            print(
                f"{label}: {done:,}/{total:,} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True
            )

    yield advance


def size_label(n: int) -> str:
    for unit, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= unit and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


# -- the server's memory -----------------------------------------------------------------------


def proc_status_kb(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class RssSampler:
    """VmRSS of a process every ``interval`` s in a thread; ``peak()`` is the largest sample (MB)."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            kb = proc_status_kb(self.pid, "VmRSS")
            if kb is not None:
                self.samples.append(kb)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mb(self) -> float | None:
        return max(self.samples) / 1024 if self.samples else None


def drain_stderr(server: Server) -> collections.deque[str]:
    """The tail of the server's stderr (``Server`` reads it in a thread: a full pipe would block it)."""
    return server.stderr_tail


# -- exact ground truth ------------------------------------------------------------------------


class ExactTopK:
    """The running exact top-k (inner product) of every query among the documents seen so far, over
    all documents and over those passing each filter."""

    def __init__(self, queries: np.ndarray, k: int = TOP_K) -> None:
        self.queries, self.k = queries, k
        q = len(queries)
        self.scores = {s: np.full((q, k), -np.inf, dtype=np.float32) for s in ("all", *FILTERS)}
        self.index = {s: np.full((q, k), -1, dtype=np.int64) for s in ("all", *FILTERS)}
        self.passing = dict.fromkeys(("all", *FILTERS), 0)

    def add(self, chunk: Chunk) -> None:
        sims = self.queries @ chunk.vectors.T
        masks = {"all": None, "10%": chunk.meta["decile"] == 3, "1%": chunk.meta["bucket"] == 7}
        for subset, mask in masks.items():
            cols = np.arange(len(chunk)) if mask is None else np.flatnonzero(mask)
            self.passing[subset] += len(cols)
            scores = np.concatenate([self.scores[subset], sims[:, cols]], axis=1)
            index = np.concatenate(
                [self.index[subset], np.broadcast_to(chunk.start + cols, (len(sims), len(cols)))], axis=1
            )
            if scores.shape[1] > self.k:
                keep = np.argpartition(-scores, self.k - 1, axis=1)[:, : self.k]
                scores, index = (
                    np.take_along_axis(scores, keep, axis=1),
                    np.take_along_axis(index, keep, axis=1),
                )
            self.scores[subset], self.index[subset] = scores, index

    def ids(self, subset: str, i: int) -> set[int]:
        return {int(j) for j in self.index[subset][i] if j >= 0}


def doc_index(document_id: str) -> int:
    return int(document_id.rsplit("-", 1)[1])


def recall(found: list[int], exact: set[int]) -> float:
    return len(set(found) & exact) / len(exact) if exact else 1.0


# -- 1. ingest ---------------------------------------------------------------------------------


@dataclass
class Ingest:
    seconds: float
    docs_per_s: float
    batches: int
    bm25_texts: dict[int, np.ndarray]  # the word ranks of each query's target document


def prepare_bodies(
    world: Synthetic, n: int, batch: int, targets: set[int], vector_format: str
) -> tuple[list[tuple[bytes, int]], dict[int, np.ndarray]]:
    """Every request body, encoded before the clock starts (so the figure is the server's rate, not the
    generator's), and the target documents' words for the BM25 queries."""
    bodies: list[tuple[bytes, int]] = []
    texts: dict[int, np.ndarray] = {}
    pending: list[dict[str, Any]] = []
    with progress(f"prepare {n:,} documents ({vector_format} vectors)", n) as advance:
        for index in range(world.chunks(n)):
            chunk = world.chunk(index, n)
            assert chunk.word_ranks is not None
            for k in targets & set(range(chunk.start, chunk.start + len(chunk))):
                texts[k] = chunk.word_ranks[k - chunk.start]
            pending += chunk.documents(vector_format=vector_format)
            while len(pending) >= batch or (pending and index == world.chunks(n) - 1):
                docs, pending = pending[:batch], pending[batch:]
                bodies.append((orjson.dumps({"documents": docs}, option=NUMPY), len(docs)))
            advance(len(chunk))
    return bodies, texts


def ingest(
    http: httpx.Client,
    world: Synthetic,
    n: int,
    batch: int,
    targets: set[int],
    vector_format: str,
    clients: int,
) -> Ingest:
    """POST every body; ``clients`` connections send concurrently (one request each in flight), so the
    server parses and validates one batch while SQLite writes another."""
    bodies, texts = prepare_bodies(world, n, batch, targets, vector_format)
    local = threading.local()

    def post(item: tuple[bytes, int]) -> int:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=http.base_url, headers=http.headers, timeout=600)
        body, count = item
        checked(
            client.post(
                f"/v1/collections/{COLL}/documents/batch",
                content=body,
                headers={"Content-Type": "application/json"},
            )
        )
        return count

    sent = 0
    with progress(f"ingest {n:,} documents (batches of {batch:,}, {clients} connections)", n) as advance:
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            for count in pool.map(post, bodies):
                sent += count
                advance(count)
        seconds = time.perf_counter() - t0
    if sent != n:
        raise StepFailed(f"sent {sent} documents, expected {n}")
    return Ingest(seconds, n / seconds, (n + batch - 1) // batch, texts)


# -- time until indexed ------------------------------------------------------------------------


@dataclass
class Indexed:
    method: str
    seconds: float
    status: dict[str, Any]


def settled(status: dict[str, Any]) -> bool:
    """Nothing left to index: no feature has pending vectors or is building (a feature below the HNSW
    threshold is searched exactly by design and reports nothing pending)."""
    return all(not f["building"] and f["pending"] == 0 for f in status["features"])


def wait_indexed(http: httpx.Client, poll_timeout: float, build_now: bool) -> Indexed:
    """From the end of the load until the vector index holds every vector (contract: GET/POST
    /v1/collections/{c}/vector-index[/build])."""
    t0 = time.perf_counter()
    path = f"/v1/collections/{COLL}/vector-index"
    if not build_now:
        status = checked(http.get(path)).json()
        total = sum(f["vectors"] for f in status["features"])
        done, polls = 0, 1
        with progress("waiting for the background index build (polling)", total) as advance:
            while True:
                indexed = sum(f["indexed"] for f in status["features"])
                advance(max(0, indexed - done))
                done = max(done, indexed)
                if settled(status):
                    below = [f["name"] for f in status["features"] if f["vectors"] < f["threshold"]]
                    note = f"; below the threshold, exact by design: {', '.join(below)}" if below else ""
                    polled = f"{polls} poll{'s' if polls > 1 else ''}"
                    method = f"polled GET …/vector-index every 0.2 s ({polled}){note}"
                    return Indexed(method, time.perf_counter() - t0, status)
                if time.perf_counter() - t0 >= poll_timeout:
                    break
                time.sleep(0.2)
                status = checked(http.get(path)).json()
                polls += 1
    waited = time.perf_counter() - t0
    status = checked(http.post(f"{path}/build", json={"wait": True}, timeout=None)).json()
    if not settled(status):
        raise StepFailed(f"POST {path}/build (wait) returned with work pending: {status}")
    method = "POST …/vector-index/build {wait: true}"
    if not build_now:
        method = f"polled {waited:.0f} s (not settled), then {method}"
    return Indexed(method, time.perf_counter() - t0, status)


def dense_status(status: dict[str, Any] | None) -> dict[str, Any] | None:
    if not status:
        return None
    return next(
        (
            f
            for f in status["features"]
            if f.get("name") == DENSE_FEATURE or f.get("feature_uri") == DENSE_URI
        ),
        None,
    )


# -- 2. latency and recall over HTTP -----------------------------------------------------------


def request_body(qt: QueryType, vector: np.ndarray, text: str) -> bytes:
    top_k = LEG_TOP_K if qt.hybrid else TOP_K
    searches: list[dict[str, Any]] = []
    if qt.dense:
        searches.append(
            {"feature_uri": DENSE_URI, "query": {"input_mode": "vector", "value": vector}, "top_k": top_k}
        )
    if qt.bm25:
        searches.append({"feature_uri": BM25_URI, "query": text, "top_k": top_k})
    parameters: dict[str, Any] = {"searches": searches, "final_top_k": TOP_K}
    if qt.hybrid:
        parameters |= {"fusion": "rrf", "rrf_k": RRF_K}
    body: dict[str, Any] = {
        "collection_identifiers": [COLL],
        "stages": [
            {
                "stage_name": "search",
                "stage_type": "filter",
                "config": {"stage_id": "feature_search", "parameters": parameters},
            }
        ],
        "limit": TOP_K,
    }
    if qt.filter:
        body["filters"] = FILTERS[qt.filter]
    return orjson.dumps(body, option=NUMPY)


@dataclass
class Measured:
    latency_ms: list[float]
    results: list[list[int]]  # document indexes returned, best first
    searches: list[list[dict[str, Any]]]  # stage metadata "searches" of each query


class RawClient:
    """A keep-alive HTTP/1.1 client on the standard library's http.client, for the latency loops: it
    costs about 0.1 ms a request where httpx costs about 0.6, so the figures are the server's."""

    def __init__(self, url: str, key: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port or 80, timeout=600)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        self.conn.request(method, path, body=body, headers=self.headers)
        response = self.conn.getresponse()
        content = response.read()
        if response.status >= 400:
            raise StepFailed(f"{method} {path} -> {response.status}: {content[:1000]!r}")
        return content

    def close(self) -> None:
        self.conn.close()


def run_queries(client: RawClient, bodies: list[bytes], advance: Callable[[int], None]) -> Measured:
    """The first WARMUP bodies unmeasured, then the rest one at a time."""
    out = Measured([], [], [])
    for i, body in enumerate(bodies):
        t0 = time.perf_counter()
        content = client.request("POST", "/v1/retrievers/execute", body)
        elapsed = (time.perf_counter() - t0) * 1000
        data = orjson.loads(content)
        if data.get("status") != "completed" or data.get("error"):
            raise StepFailed(f"execute failed: {data.get('error')}")
        if i >= WARMUP:
            out.latency_ms.append(elapsed)
            out.results.append([doc_index(d["document_id"]) for d in data["documents"]])
            stage = data["stage_statistics"]["stages"]["search"]
            out.searches.append(stage.get("metadata", {}).get("searches", []))
        advance(1)
    return out


def health_floor(client: RawClient, n: int) -> list[float]:
    samples = []
    for i in range(n + WARMUP):
        t0 = time.perf_counter()
        client.request("GET", "/v1/health")
        if i >= WARMUP:
            samples.append((time.perf_counter() - t0) * 1000)
    return samples


def inprocess_dense(data_dir: Path, env: dict[str, str], bodies: list[bytes]) -> dict[str, float]:
    """p50/p95/p99 of the dense queries run by Siftline's executor in this process (no HTTP, no JSON
    request parsing): the engine's own overhead over the index library, beside the HTTP figure."""
    from siftline.config import Settings
    from siftline.service import namespaces
    from siftline.service.container import Services

    overrides = {k.removeprefix("SIFTLINE_").lower(): v for k, v in env.items() if k.startswith("SIFTLINE_")}
    svc = Services.open(Settings(data_dir=data_dir, **overrides))
    try:
        ns = namespaces.ensure_namespace(svc.storage, "default")
        requests = [orjson.loads(b) for b in bodies]
        samples = []
        with progress("dense queries in process (no HTTP)", len(requests)) as advance:
            for i, request in enumerate(requests):
                t0 = time.perf_counter()
                out = svc.executor.execute_adhoc(ns, request)
                elapsed = (time.perf_counter() - t0) * 1000
                if out.get("status") != "completed":
                    raise StepFailed(f"in-process execute failed: {out.get('error')}")
                if i >= WARMUP:
                    samples.append(elapsed)
                advance(1)
    finally:
        svc.close()
    return {k: round(v, 3) for k, v in percentiles(samples).items()}


def leg_names(qt: QueryType) -> list[str]:
    return [name for name, on in (("dense", qt.dense), ("bm25", qt.bm25)) if on]


def summarize(qt: QueryType, measured: Measured, exact: ExactTopK) -> dict[str, Any]:
    row: dict[str, Any] = {k: round(v, 2) for k, v in percentiles(measured.latency_ms).items()}
    row["returned_mean"] = round(statistics.fmean(len(r) for r in measured.results), 2)
    row["returned_min"] = min(len(r) for r in measured.results)
    legs: dict[str, Any] = {}
    for i, leg in enumerate(leg_names(qt)):
        infos = [s[i] if i < len(s) else {} for s in measured.searches]
        paths = collections.Counter(str(info.get("path", "?")) for info in infos)
        efs = sorted({info["ef_search"] for info in infos if info.get("ef_search") is not None})
        examined = [
            info["candidates_examined"] for info in infos if info.get("candidates_examined") is not None
        ]
        passes = [info["filter_passes"] for info in infos if info.get("filter_passes") is not None]
        legs[leg] = {
            "paths": dict(paths),
            "ef_search": efs,
            "candidates_examined_median": statistics.median(examined) if examined else None,
            "filter_passes_median": statistics.median(passes) if passes else None,
        }
    row["legs"] = legs
    if qt.dense and not qt.bm25:
        recalls = [recall(found, exact.ids(qt.subset, i)) for i, found in enumerate(measured.results)]
        row["recall_at_10"] = round(statistics.fmean(recalls), 4)
        row["recall_at_10_min"] = round(min(recalls), 4)
    return row


# -- 5. in-process baseline ---------------------------------------------------------------------


def exact_pass(world: Synthetic, n: int, exact: ExactTopK, hnsw: faiss.Index | None) -> float:
    """Remake every chunk's vectors and metadata: feed the exact top-k and add the vectors to the faiss
    HNSW index (when given). Returns the seconds spent adding to faiss."""
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    build_s = 0.0
    label = "exact top-10" + (" and faiss HNSW build" if hnsw is not None else "")
    with progress(label, n) as advance:
        for c in range(world.chunks(n)):
            chunk = world.chunk(c, n, text=False)
            exact.add(chunk)
            if hnsw is not None:
                t0 = time.perf_counter()
                hnsw.add(chunk.vectors)
                build_s += time.perf_counter() - t0
            advance(len(chunk))
    return build_s


def faiss_search(hnsw: faiss.Index, queries: np.ndarray, exact: ExactTopK, ef_search: int) -> dict[str, Any]:
    """Single queries, one thread; the first WARMUP unmeasured."""
    faiss.omp_set_num_threads(1)
    hnsw.hnsw.efSearch = ef_search
    latencies, recalls = [], []
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        _, found = hnsw.search(q[None, :], TOP_K)
        elapsed = (time.perf_counter() - t0) * 1000
        if i >= WARMUP:
            latencies.append(elapsed)
            recalls.append(recall(found[0].tolist(), exact.ids("all", i - WARMUP)))
    return {
        **{k: round(v, 4) for k, v in percentiles(latencies).items()},
        "recall_at_10": round(statistics.fmean(recalls), 4),
    }


# -- the report ---------------------------------------------------------------------------------


def fmt(value: Any, spec: str = "", none: str = "n/a") -> str:
    return none if value is None else format(value, spec)


def paths_cell(row: dict[str, Any]) -> tuple[str, str, str]:
    paths, efs, examined = [], [], []
    for leg, info in row["legs"].items():
        paths.append(f"{leg}: " + ", ".join(f"{p} x{c}" for p, c in sorted(info["paths"].items())))
        if info["ef_search"]:
            efs.append(f"{leg}: {'/'.join(map(str, info['ef_search']))}")
        if info["candidates_examined_median"] is not None:
            examined.append(f"{leg}: {info['candidates_examined_median']:,.0f}")
    return "; ".join(paths), "; ".join(efs) or "—", "; ".join(examined) or "—"


def render(fig: dict[str, Any]) -> str:
    lines = []
    ing, idx = fig.get("ingest"), fig.get("index")
    lines += [
        "| ingest and indexing | value |",
        "|---|---|",
        f"| documents (384-d vectors supplied, text BM25-indexed) | {fig['docs']:,} |",
        f"| ingest over HTTP, batches of {fig['batch']:,} | "
        + (
            f"**{ing['docs_per_s']:,.0f} docs/s** ({ing['seconds']:.1f} s, {ing['batches']} requests; "
            f"{ing.get('clients', 1)} connections, vectors as {ing['vector_format']}, bodies encoded before "
            "the clock started) |"
            if ing
            else "failed |"
        ),
        "| time until indexed (after the last batch) | "
        + (f"**{idx['seconds']:.1f} s** — {idx['method']} |" if idx else "n/a (see failures) |"),
    ]
    feat = fig.get("dense_index")
    if feat:
        lines.append(
            f"| dense feature after indexing | path {feat.get('path')}, {feat.get('vectors'):,} vectors, "
            f"{feat.get('indexed'):,} indexed, {feat.get('pending'):,} pending, "
            f"{feat.get('tombstones'):,} tombstones, "
            f"{feat.get('segments', '?')} HNSW segment(s) |"
        )
    passing = fig.get("exact_passing", {})
    lines += [
        "",
        f"Latency over HTTP: {fig['queries']} queries per type after {WARMUP} warm-up, "
        "one keep-alive client. "
        f"Documents passing the filters: 10% {passing.get('10%', 0):,}, 1% {passing.get('1%', 0):,}.",
        "",
    ]
    lines += [
        "| query | p50 ms | p95 ms | p99 ms | mean ms | recall@10 vs exact | path per search | ef_search "
        "| candidates examined (median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lat = fig.get("latency", {})
    for qt in QUERY_TYPES:
        row = lat.get(qt.name)
        if not row:
            lines.append(f"| {qt.name} | failed | | | | | | | |")
            continue
        if "recall_at_10" in row:
            rec = f"{row['recall_at_10']:.3f} (min {row['recall_at_10_min']:.1f})"
        elif qt.dense:
            dense_only = lat.get(f"dense + {qt.filter} filter" if qt.filter else "dense", {})
            rec = f"dense leg: {fmt(dense_only.get('recall_at_10'), '.3f')} (dense-only query, same filter)"
        else:
            rec = "— (FTS5, exact)"
        paths, efs, examined = paths_cell(row)
        lines.append(
            f"| {qt.name} | {row['p50']:.1f} | {row['p95']:.1f} | {row['p99']:.1f} | {row['mean']:.1f} "
            f"| {rec} "
            f"| {paths} | {efs} | {examined} |"
        )
    floor, base = fig.get("health_floor_ms"), fig.get("baseline")
    dense = lat.get("dense")
    lines += ["", "| dense query: Siftline vs faiss in process | value |", "|---|---|"]
    lines.append(f"| Siftline dense p50 over HTTP | {fmt(dense and dense['p50'], '.2f')} ms |")
    lines.append(f"| HTTP floor: GET /v1/health p50, same client | {fmt(floor and floor['p50'], '.2f')} ms |")
    if base:
        lines += [
            f"| faiss IndexHNSWFlat in process (M={base['m']}, efConstruction={base['ef_construction']}, "
            f"efSearch={base['ef_search']}, 1 thread) p50 | {base['p50']:.3f} ms "
            f"(recall@10 {base['recall_at_10']:.3f}; "
            f"build {base['build_s']:.1f} s on {base['build_threads']} threads) |",
            f"| ratio Siftline p50 / faiss p50 | {fmt(fig.get('ratio'), '.1f')}x |",
            f"| ratio (Siftline p50 - floor) / faiss p50 | {fmt(fig.get('ratio_minus_floor'), '.1f')}x |",
        ]
    inproc = fig.get("inprocess_dense_ms")
    if inproc:
        lines += [
            f"| Siftline dense p50 in process (executor, no HTTP) | {inproc['p50']:.2f} ms "
            f"(p95 {inproc['p95']:.2f}, p99 {inproc['p99']:.2f}) |",
            f"| ratio Siftline in-process p50 / faiss p50 | {fmt(fig.get('ratio_inprocess'), '.1f')}x |",
        ]
    else:
        lines.append("| faiss baseline | n/a (see failures) |")
    rss = fig.get("rss", {})
    lines += [
        "",
        "| server memory (/proc/<pid>/status) | MB |",
        "|---|---|",
        f"| VmRSS after start, before ingest | {fmt(rss.get('start_mb'), ',.0f')} |",
        f"| VmRSS peak sampled during ingest (every 0.25 s) | {fmt(rss.get('ingest_peak_mb'), ',.0f')} |",
        f"| VmRSS peak sampled while indexing | {fmt(rss.get('indexing_peak_mb'), ',.0f')} |",
        f"| VmRSS at the end | {fmt(rss.get('end_mb'), ',.0f')} |",
        f"| **peak RSS (VmHWM) at the end** | **{fmt(rss.get('vm_hwm_mb'), ',.0f')}** |",
    ]
    settings = fig.get("settings", {})
    lines += ["", "| server setting | value |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in settings.items()]
    if fig.get("acceptance"):
        lines += ["", *(f"- acceptance: {a}" for a in fig["acceptance"])]
    if fig.get("failures"):
        lines += ["", *(f"- **FAILED**: {f}" for f in fig["failures"])]
    return "\n".join(lines) + "\n"


# -- main ---------------------------------------------------------------------------------------


def server_env(args: argparse.Namespace) -> dict[str, str]:
    env = {"SIFTLINE_MAX_BATCH_DOCUMENTS": str(max(args.batch, 10_000))}
    if args.hnsw_threshold is not None:
        env["SIFTLINE_HNSW_THRESHOLD"] = str(args.hnsw_threshold)
    if args.ef_search is not None:
        env["SIFTLINE_HNSW_EF_SEARCH"] = str(args.ef_search)
    return env


def settings_table(env: dict[str, str], feat: dict[str, Any] | None) -> dict[str, str]:
    """The settings passed, then the rest as the server reported them (else its defaults)."""
    from siftline.config import Settings

    defaults = {f"SIFTLINE_{name.upper()}": field.default for name, field in Settings.model_fields.items()}
    reported = {
        "SIFTLINE_HNSW_THRESHOLD": "threshold",
        "SIFTLINE_HNSW_M": "m",
        "SIFTLINE_HNSW_EF_CONSTRUCTION": "ef_construction",
        "SIFTLINE_HNSW_EF_SEARCH": "ef_search",
    }
    table = {k: f"{v} (set)" for k, v in env.items()}
    for name in (*reported, "SIFTLINE_EXACT_FILTER_MAX", "SIFTLINE_RECORD_EXECUTIONS"):
        if name in table:
            continue
        if feat and reported.get(name) in feat:
            table[name] = f"{feat[reported[name]]} (reported by GET …/vector-index)"
        elif name in defaults:
            table[name] = f"{defaults[name]} (default)"
    return table


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument(
        "--queries", type=int, default=200, help="measured queries per type (after 20 warm-up)"
    )
    parser.add_argument("--batch", type=int, default=5000, help="documents per POST …/documents/batch")
    parser.add_argument("--clients", type=int, default=2, help="concurrent connections during ingest")
    parser.add_argument(
        "--vector-format",
        choices=["b64", "json"],
        default="b64",
        help="vectors as base64 float32 strings (the bulk-load fast path) or JSON number lists",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--hnsw-threshold", type=int, help="SIFTLINE_HNSW_THRESHOLD (default: the server's)")
    parser.add_argument("--ef-search", type=int, help="SIFTLINE_HNSW_EF_SEARCH (default: the server's)")
    parser.add_argument("--poll-timeout", type=float, default=1800, help="s to poll before POST …/build")
    parser.add_argument("--build-now", action="store_true", help="POST …/vector-index/build at once")
    parser.add_argument("--tmp-dir", type=Path, help="where the server's temporary data directory goes")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--no-write", action="store_true", help="do not write docs/BENCHMARKS.md")
    args = parser.parse_args()
    command = shlex.join(["python", "benchmarks/scale.py", *sys.argv[1:]])
    n, n_queries = args.docs, args.queries

    world = Synthetic(args.seed)
    targets = world.query_targets(n_queries + WARMUP, n)  # warm-up queries first
    vectors = world.query_vectors(targets, n)
    exact = ExactTopK(vectors[WARMUP:])
    env = server_env(args)
    fig: dict[str, Any] = {
        "command": command, "docs": n, "dim": DIM, "queries": n_queries, "batch": args.batch,
        "seed": args.seed, "chunk": CHUNK, "failures": [], "acceptance": [],
    }  # fmt: skip
    failures: list[str] = fig["failures"]
    status: dict[str, Any] | None = None
    measured: dict[str, Measured] = {}

    with tempfile.TemporaryDirectory(dir=args.tmp_dir, prefix="siftline-scale-") as tmp:
        server, key = start_with_key(Path(tmp) / "data", env=env)
        assert server.proc is not None
        pid = server.proc.pid
        stderr_tail = drain_stderr(server)
        http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=600)
        try:
            start_kb = proc_status_kb(pid, "VmRSS")
            fig["rss"] = {"start_mb": start_kb / 1024 if start_kb else None}
            checked(http.post("/v1/collections", json=COLLECTION))
            with RssSampler(pid) as sampler:
                result = ingest(
                    http, world, n, args.batch, set(targets.tolist()), args.vector_format, args.clients
                )
            fig["rss"]["ingest_peak_mb"] = sampler.peak_mb()
            fig["ingest"] = {
                "seconds": round(result.seconds, 2),
                "docs_per_s": round(result.docs_per_s, 1),
                "batches": result.batches,
                "vector_format": args.vector_format,
                "clients": args.clients,
            }
            print(
                f"ingest: {n:,} documents in {result.seconds:.1f} s = {result.docs_per_s:,.0f} docs/s",
                flush=True,
            )
            try:
                with RssSampler(pid) as sampler:
                    indexed = wait_indexed(http, args.poll_timeout, args.build_now)
                fig["rss"]["indexing_peak_mb"] = sampler.peak_mb()
                status = indexed.status
                fig["index"] = {"method": indexed.method, "seconds": round(indexed.seconds, 2)}
                fig["vector_index_status"] = status
                fig["dense_index"] = dense_status(status)
                print(f"time until indexed: {indexed.seconds:.1f} s ({indexed.method})", flush=True)
            except (StepFailed, httpx.HTTPError, KeyError, TypeError) as exc:
                failures.append(f"time until indexed (vector-index status API): {exc}")

            rng = np.random.default_rng([args.seed, 6])
            texts = [world.bm25_query(result.bm25_texts[int(t)], rng) for t in targets]
            bodies = {
                qt.name: [request_body(qt, v, s) for v, s in zip(vectors, texts, strict=True)]
                for qt in QUERY_TYPES
            }
            raw = RawClient(server.url, key)
            with progress("queries over HTTP", len(QUERY_TYPES) * len(targets)) as advance:
                for qt in QUERY_TYPES:
                    try:
                        measured[qt.name] = run_queries(raw, bodies[qt.name], advance)
                    except (StepFailed, OSError, KeyError) as exc:
                        failures.append(f"{qt.name} queries: {exc}")
            floor = health_floor(raw, n_queries)
            raw.close()
            fig["health_floor_ms"] = {k: round(v, 3) for k, v in percentiles(floor).items()}
            end_kb, hwm_kb = proc_status_kb(pid, "VmRSS"), proc_status_kb(pid, "VmHWM")
            fig["rss"] |= {
                "end_mb": end_kb / 1024 if end_kb else None,
                "vm_hwm_mb": hwm_kb / 1024 if hwm_kb else None,
            }
        except (StepFailed, httpx.HTTPError) as exc:
            failures.append(f"{exc}")
        finally:
            http.close()
            server.stop()
            if failures and stderr_tail:
                print("server stderr (tail):\n" + "\n".join(stderr_tail), file=sys.stderr)
        if "dense" in measured:  # the same dense queries through Siftline's engine in this process
            try:
                fig["inprocess_dense_ms"] = inprocess_dense(Path(tmp) / "data", env, bodies["dense"])
            except Exception as exc:  # reported, not fatal: the HTTP figures stand on their own
                failures.append(f"in-process dense queries: {exc!r}")

    # ground truth and the in-process baseline, with the server stopped (nothing competes for the cores)
    feat = dense_status(status)
    fig["settings"] = settings_table(env, feat)
    hnsw = None
    if feat is not None:
        hnsw = faiss.IndexHNSWFlat(DIM, int(feat["m"]), faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = int(feat["ef_construction"])
    else:
        failures.append("faiss baseline: needs M / efConstruction / efSearch from GET …/vector-index")
    build_s = exact_pass(world, n, exact, hnsw)
    fig["latency"] = {
        qt.name: summarize(qt, measured[qt.name], exact) for qt in QUERY_TYPES if qt.name in measured
    }
    if hnsw is not None and feat is not None:
        # the efSearch Siftline's dense queries used (it widens ef_search for large segments), else the setting
        used = (fig["latency"].get("dense", {}).get("legs", {}).get("dense", {}).get("ef_search") or [None])[
            -1
        ]
        base = {"m": int(feat["m"]), "ef_construction": int(feat["ef_construction"]),
                "ef_search": int(used or feat["ef_search"]), "build_s": round(build_s, 2),
                "build_threads": os.cpu_count() or 1}  # fmt: skip
        base |= faiss_search(hnsw, vectors, exact, base["ef_search"])
        fig["baseline"] = base
        dense, floor_ms = fig["latency"].get("dense"), fig.get("health_floor_ms")
        if dense and floor_ms:
            fig["ratio"] = round(dense["p50"] / base["p50"], 2)
            fig["ratio_minus_floor"] = round((dense["p50"] - floor_ms["p50"]) / base["p50"], 2)
        if fig.get("inprocess_dense_ms"):
            fig["ratio_inprocess"] = round(fig["inprocess_dense_ms"]["p50"] / base["p50"], 2)

    filtered = fig.get("latency", {}).get("dense + 1% filter", {}).get("recall_at_10")
    if filtered is not None:
        ok = filtered >= ACCEPT_FILTERED_RECALL
        fig["acceptance"].append(
            f"recall@10 with a 1% filter {filtered:.3f} {'≥' if ok else '<'} {ACCEPT_FILTERED_RECALL} "
            f"({'ok' if ok else 'NOT MET'})"
        )
        if not ok:
            failures.append(f"recall@10 with the 1% filter is {filtered:.3f}, below {ACCEPT_FILTERED_RECALL}")
    fig["exact_passing"] = exact.passing

    table = render(fig)
    print(table)
    if args.json:
        args.json.write_text(orjson.dumps(fig, option=NUMPY | orjson.OPT_INDENT_2).decode())
    if not args.no_write:
        label = size_label(n)
        write_section(
            f"scale-{label}",
            f"Scale: {label} documents (384-d, supplied vectors)",
            command,
            "A real server on 127.0.0.1, fresh data directory, synthetic corpus of "
            f"`benchmarks/synthetic.py` (seed {args.seed}). Dense searches return top_k {TOP_K}; a hybrid "
            f"search has a dense and a BM25 leg of top_k {LEG_TOP_K} each, fused by RRF (k={RRF_K}) to "
            f"final_top_k {TOP_K}. Filters: `decile == 3` (10%), `bucket == 7` (1%), sent as the request's "
            "`filters`. Execution records on (server default). recall@10 is against exact inner-product "
            "search done with numpy over the same vectors (filtered: among the passing documents); a "
            "hybrid query's dense leg is judged by the dense-only query with the same filter.\n\n" + table,
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
