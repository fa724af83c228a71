"""Siftline under concurrent load: N keep-alive clients run a mixed workload for a fixed time, and every
acknowledged write is checked afterwards.

A real server (``python -m siftline serve``) on a fresh temporary data directory (or an already running
one: ``--url`` and ``--key``) gets the collection of ``benchmarks/synthetic.py`` (``--collection``) and
``--docs`` synthetic documents with their vectors (NDJSON, base64 float32, two connections, as fast as
the server takes them); the vector index is left to settle (GET …/vector-index polled, then POST
…/build). None of that is part of the load.

Then ``--clients`` clients run for ``--seconds``. A client is a thread with one keep-alive HTTP/1.1
connection (http.client: ~0.1 ms of client CPU a request) and its own seeded RNG, which picks each
request (shares: ``--mix``):

- 70 % filtered dense searches: ad hoc POST /v1/retrievers/execute, one ``feature_search`` stage, a
  dense top-10 search for a query vector from the corpus distribution (a pool of 1,000) and one of four
  filters, equally likely: ``decile == x`` (10 %), ``category == x`` (10 %), ``x <= bucket < x + w``
  (w 5-30: 5-30 %), ``decile == x AND bucket < 50`` (5 %).
- 20 % single-document writes with the vector as a JSON number list (what the SDK sends): POST
  …/documents of a new id (``load-<client>-<n>``) with the text and metadata of a fresh synthetic
  document; ``--replace-share`` (10 %) of them PUT …/documents/{id} a document the same client wrote
  before, with another payload.
- 10 % execution-record reads: GET /v1/retrievers/executions/{execution_id} of an id from one of the
  client's earlier search responses (a search instead while it has none).

Printed (and returned in ``--json PATH``): requests, throughput (requests over the wall time from the
start to the last client's last response), latency p50/p95/p99/max of every request (errors included)
overall, per kind, per operation and per filter shape; errors by status code (any non-2xx, a 2xx search
whose ``status`` is not ``completed``, or a transport error by exception name); the client processes'
CPU and the server's (from /proc, the event-loop thread apart); a progress line every 5 s (requests so
far, the rate of the last 5 s). After the load every acknowledged write is read back (POST
…/documents/list, ``document_id in [...]``, 250 at a time, with vectors) and compared with what was
written: text, metadata and vector (a replaced document with its last acknowledged payload; when a
PUT's response was lost either payload counts): "acknowledged writes missing: N" (absent or different).
Exit status 1 when a request erred, an acknowledged write is missing or a step failed; everything still
prints. Issue 12's targets (50 clients x 60 s: ≥ 300 requests/s, p99 ≤ 250 ms, 0 errors, every write
present) print as met / NOT MET without changing the exit status. Unless ``--no-write`` the report goes
to docs/BENCHMARKS.md (section ``load``, or ``load-<clients>x<seconds>`` for other sizes).

The client shares the machine with the server, so its CPU is printed; should one process's GIL limit
the clients, ``--processes 2`` splits them over two (spawned) processes.

Profiling (``--profile PATH``): py-spy (``.venv/bin/py-spy``, else on PATH) records the server process
for exactly the load's duration: ``py-spy record --pid <server pid> --format speedscope -o PATH``
(``--format raw``, collapsed stacks, when PATH ends in ``.txt``), stopped with SIGINT when the load
ends; open a speedscope file at https://www.speedscope.app. ``--profile-gil`` adds a second recording
of only the samples that hold the GIL (``--gil --nonblocking --format raw``, PATH + ``.gil.txt``): its
samples over rate x seconds is the share of the run the GIL was held. ``--profile-idle`` adds one of
every thread, idle ones included (``--idle --nonblocking``, PATH + ``.idle.txt``): where waiting
threads wait (locks, SQLite, the thread pool's queue). Each recording is summarised after the run: top
frames by own and by cumulative samples, own samples per module (``benchmarks/server_profile.py``,
which also summarises a saved recording on its own). py-spy needs to be allowed to ptrace
the server (root, or kernel.yama.ptrace_scope 0); with ``--url`` pass ``--server-pid``. A profiled
run's figures are not the benchmark's: py-spy pauses the server at every sample to walk its ~50
threads, and takes CPU of its own (printed). Measured at 10k documents, 50 clients x 20 s: 46-54
requests/s unprofiled, 23 with ``--profile``, 40 with ``--profile --profile-nonblocking`` (py-spy reads
the stacks without pausing; a few samples may be torn), 20 with all three recordings.

    python benchmarks/load.py                                   # 20k docs, 50 clients x 60 s (~2 min)
    python benchmarks/load.py --docs 2000 --clients 5 --seconds 3 --no-write --json out.json
    python benchmarks/load.py --no-write --profile /tmp/load.speedscope --profile-gil --profile-idle
    python benchmarks/load.py --url http://127.0.0.1:8000 --key KEY --collection load1 --server-pid PID
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import http.client
import multiprocessing
import os
import queue
import random
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

import server_profile
from report import percentiles, write_section
from scale import DENSE_URI, StepFailed, checked, drain_stderr, settled, size_label
from siftline.testing.server import start_with_key
from synthetic import CHUNK, COLLECTION, DENSE_FEATURE, Synthetic

NUMPY = orjson.OPT_SERIALIZE_NUMPY
TOP_K = 10
QUERY_POOL = 1000
SEED_BATCH = 5000  # documents per NDJSON request while seeding
VERIFY_BATCH = 250  # documents per read-back request
PROGRESS_EVERY = 5.0
META = ("text", "category", "bucket", "decile", "tenant", "year")
OPS = {"search": "search", "create": "write", "replace": "write", "read": "read"}
SHAPES = ("decile == x", "category == x", "x <= bucket < x+w", "decile == x AND bucket < 50")
TARGET = {"clients": 50, "seconds": 60, "rps": 300.0, "p99_ms": 250.0}
DEFAULTS = {"clients": 50, "seconds": 60.0, "docs": 20_000}


# -- the workload ------------------------------------------------------------------------------


def draw_filter(rng: random.Random) -> tuple[str, dict[str, Any]]:
    shape = rng.randrange(len(SHAPES))
    if shape == 0:
        conds = [{"field": "decile", "operator": "eq", "value": rng.randrange(10)}]
    elif shape == 1:
        conds = [{"field": "category", "operator": "eq", "value": f"cat-{rng.randrange(10)}"}]
    elif shape == 2:
        width = rng.randint(5, 30)
        low = rng.randrange(0, 101 - width)
        conds = [
            {"field": "bucket", "operator": "gte", "value": low},
            {"field": "bucket", "operator": "lt", "value": low + width},
        ]
    else:
        conds = [
            {"field": "decile", "operator": "eq", "value": rng.randrange(10)},
            {"field": "bucket", "operator": "lt", "value": 50},
        ]
    return SHAPES[shape], {"AND": conds}


class Workload:
    """What clients send, made from the seed in each client process: query vectors (JSON fragments) and
    the payloads of fresh documents (the chunk after the corpus: never a seeded document)."""

    def __init__(self, seed: int, docs: int) -> None:
        world = Synthetic(seed)
        vectors = world.query_vectors(world.query_targets(QUERY_POOL, docs), docs)
        self.queries = [orjson.Fragment(orjson.dumps(v, option=NUMPY)) for v in vectors]
        after = world.chunks(docs)
        fresh = world.chunk(after, (after + 1) * CHUNK)
        self.vectors = fresh.vectors
        self.payloads = fresh.documents(vector_format="json")
        for p in self.payloads:
            del p["document_id"]
            p["vectors"] = {
                DENSE_FEATURE: orjson.Fragment(orjson.dumps(p["vectors"][DENSE_FEATURE], option=NUMPY))
            }

    def matches(self, doc: dict[str, Any], payload: int) -> bool:
        want = self.payloads[payload]
        if any(doc.get(k) != want[k] for k in META):
            return False
        got = (doc.get("vectors") or {}).get(DENSE_FEATURE)
        if got is None or len(got) != self.vectors.shape[1]:
            return False
        return bool(np.allclose(np.asarray(got, dtype=np.float32), self.vectors[payload], rtol=0, atol=1e-6))


def search_body(collection: str, vector: orjson.Fragment, filters: dict[str, Any]) -> bytes:
    search = {"feature_uri": DENSE_URI, "query": {"input_mode": "vector", "value": vector}, "top_k": TOP_K}
    return orjson.dumps({
        "collection_identifiers": [collection],
        "stages": [{
            "stage_name": "search",
            "stage_type": "filter",
            "config": {"stage_id": "feature_search", "parameters": {"searches": [search], "final_top_k": TOP_K}},
        }],
        "limit": TOP_K,
        "filters": filters,
    })  # fmt: skip


# -- clients -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    url: str
    key: str
    collection: str
    seed: int
    docs: int
    seconds: float
    mix: tuple[float, float, float]  # search, write, read
    replace_share: float
    timeout: float


@dataclass
class Tally:
    """What a set of clients did: latencies (ms) per operation and per filter shape, errors, the ledger
    of acknowledged writes (document id -> the payload indexes it may hold)."""

    latency: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPS})
    shapes: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in SHAPES})
    returned: collections.Counter[int] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)  # "op status"
    samples: dict[str, str] = field(default_factory=dict)  # the first response of each kind of error
    ledger: dict[str, tuple[int, ...]] = field(default_factory=dict)
    unacknowledged: int = 0
    ends: list[float] = field(default_factory=list)  # wall time of each client's last response
    cpu_s: float = 0.0

    def merge(self, other: Tally) -> None:
        for op, values in other.latency.items():
            self.latency[op] += values
        for shape, values in other.shapes.items():
            self.shapes[shape] += values
        self.returned.update(other.returned)
        self.errors.update(other.errors)
        for k, v in other.samples.items():
            self.samples.setdefault(k, v)
        self.ledger |= other.ledger
        self.unacknowledged += other.unacknowledged
        self.ends += other.ends
        self.cpu_s += other.cpu_s


class Connection:
    """One keep-alive HTTP/1.1 connection; a transport error closes it (the next request reconnects)."""

    def __init__(self, url: str, key: str, timeout: float) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(
            parsed.hostname or "127.0.0.1", parsed.port or 80, timeout=timeout
        )
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def send(self, method: str, path: str, body: bytes | None = None) -> tuple[int | None, bytes]:
        try:
            self.conn.request(method, path, body=body, headers=self.headers)
            response = self.conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()
            return None, type(exc).__name__.encode()


@dataclass
class Sync:
    """Start and progress across processes: each client process releases ``ready`` once, then every client
    waits for ``go``; ``start`` is the wall time of the start; ``counts[2i]``/``[2i+1]`` are client i's
    requests and errors so far."""

    ready: Any
    go: Any
    start: Any
    counts: Any


def run_client(
    index: int, plan: Plan, work: Workload, sync: Sync, tally: Tally, connected: threading.Semaphore
) -> None:
    conn = Connection(plan.url, plan.key, plan.timeout)
    try:
        try:
            conn.conn.connect()
        finally:
            connected.release()
        client_loop(index, plan, work, sync, tally, conn)
    except Exception as exc:  # a bug here, not the server's: counted, so the run fails loudly
        tally.errors[f"client {type(exc).__name__}"] += 1
        tally.samples.setdefault(f"client {type(exc).__name__}", repr(exc))
    finally:
        tally.ends.append(time.time())
        conn.conn.close()


def client_loop(index: int, plan: Plan, work: Workload, sync: Sync, tally: Tally, conn: Connection) -> None:
    rng = random.Random(f"{plan.seed}/{index}")
    docs_path = f"/v1/collections/{plan.collection}/documents"
    written: list[str] = []  # acknowledged, safe to replace
    executions: list[str] = []
    made = 0
    search_share, write_share, _ = plan.mix
    sync.go.wait()
    deadline = sync.start.value + plan.seconds
    while time.time() < deadline:
        roll = rng.random()
        if roll < search_share or (roll >= search_share + write_share and not executions):
            op = "search"
        elif roll < search_share + write_share:
            op = "replace" if written and rng.random() < plan.replace_share else "create"
        else:
            op = "read"
        body: bytes | None = None
        if op == "search":
            shape, filters = draw_filter(rng)
            body = search_body(plan.collection, work.queries[rng.randrange(QUERY_POOL)], filters)
            method, path = "POST", "/v1/retrievers/execute"
        elif op == "read":
            method, path = "GET", f"/v1/retrievers/executions/{rng.choice(executions[-200:])}"
        else:
            payload = rng.randrange(len(work.payloads))
            if op == "create":
                made += 1
                doc_id = f"load-{index:03d}-{made:06d}"
                method, path = "POST", docs_path
            else:
                doc_id = rng.choice(written)
                method, path = "PUT", f"{docs_path}/{doc_id}"
            body = orjson.dumps({"document_id": doc_id, **work.payloads[payload]})
        t0 = time.perf_counter()
        status, content = conn.send(method, path, body)
        ms = (time.perf_counter() - t0) * 1000
        tally.latency[op].append(ms)
        ok = status is not None and 200 <= status < 300
        label = str(status) if status is not None else content.decode()
        if op == "search":
            tally.shapes[shape].append(ms)
            if ok:
                try:
                    data = orjson.loads(content)
                except orjson.JSONDecodeError:
                    data = {}
                if data.get("status") == "completed":
                    executions.append(data["execution_id"])
                    tally.returned[len(data.get("documents") or ())] += 1
                else:
                    ok, label = False, f"{status} status={data.get('status')}"
        elif op == "create":
            if ok:
                tally.ledger[doc_id] = (payload,)
                written.append(doc_id)
            else:
                tally.unacknowledged += 1
        elif op == "replace":
            if ok:
                tally.ledger[doc_id] = (payload,)
            else:  # either payload may be there; a lost response may still be running: replace it no more
                tally.ledger[doc_id] = (*tally.ledger[doc_id], payload)
                if status is None:
                    written.remove(doc_id)
        sync.counts[2 * index] += 1
        if not ok:
            sync.counts[2 * index + 1] += 1
            tally.errors[f"{op} {label}"] += 1
            tally.samples.setdefault(f"{op} {label}", content[:300].decode(errors="replace"))


def run_clients(plan: Plan, clients: list[int], sync: Sync) -> Tally:
    """Runs ``clients`` as threads of this process; returns their merged tally."""
    work = Workload(plan.seed, plan.docs)
    tallies = [Tally() for _ in clients]
    connected = threading.Semaphore(0)
    threads = [
        threading.Thread(target=run_client, args=(i, plan, work, sync, t, connected), daemon=True)
        for i, t in zip(clients, tallies, strict=True)
    ]
    for t in threads:
        t.start()
    for _ in threads:
        connected.acquire()
    sync.ready.release()
    sync.go.wait()
    cpu0 = time.process_time()
    for thread in threads:
        thread.join()
    merged = Tally()
    for tally in tallies:
        merged.merge(tally)
    merged.cpu_s = time.process_time() - cpu0
    return merged


def client_process(plan: Plan, clients: list[int], sync: Sync, out: Any) -> None:
    out.put(run_clients(plan, clients, sync))


# -- the server: seeding, CPU, profile ----------------------------------------------------------


def seed(http: httpx.Client, collection: str, world: Synthetic, n: int) -> dict[str, Any]:
    """The corpus as NDJSON (base64 vectors) over two connections, chunk by chunk."""
    local = threading.local()

    def post(body: bytes) -> int:
        if getattr(local, "client", None) is None:
            local.client = httpx.Client(base_url=http.base_url, headers=http.headers, timeout=600)
        response = local.client.post(
            f"/v1/collections/{collection}/documents/batch",
            content=body,
            headers={"Content-Type": "application/x-ndjson"},
        )
        return int(checked(response).json()["count"])

    sent, t0 = 0, time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for index in range(world.chunks(n)):
            docs = world.chunk(index, n).documents(vector_format="b64")
            bodies = [
                b"\n".join(orjson.dumps(d) for d in docs[lo : lo + SEED_BATCH])
                for lo in range(0, len(docs), SEED_BATCH)
            ]
            sent += sum(pool.map(post, bodies))
            print(
                f"seed: {sent:,}/{n:,} documents ({time.perf_counter() - t0:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    seconds = time.perf_counter() - t0
    if sent != n:
        raise StepFailed(f"seeded {sent} documents, expected {n}")
    return {"docs": n, "seconds": round(seconds, 2), "docs_per_s": round(n / seconds, 1)}


def settle(http: httpx.Client, collection: str, timeout: float) -> dict[str, Any]:
    """Until the vector index holds every vector (polled; after ``timeout`` s, POST …/build and wait)."""
    path, t0 = f"/v1/collections/{collection}/vector-index", time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if settled(checked(http.get(path)).json()):
            return {"seconds": round(time.perf_counter() - t0, 2), "method": "polled"}
        time.sleep(0.2)
    if not settled(checked(http.post(f"{path}/build", json={"wait": True}, timeout=None)).json()):
        raise StepFailed(f"POST {path}/build returned with work pending")
    return {
        "seconds": round(time.perf_counter() - t0, 2),
        "method": f"polled {timeout:.0f} s, then POST …/build",
    }


def cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each thread of ``pid`` (empty when it is gone)."""
    tick, out = os.sysconf("SC_CLK_TCK"), {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return {}
    for tid in tids:
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def server_cpu(pid: int, before: dict[int, float], after: dict[int, float], seconds: float) -> dict[str, Any]:
    used = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    others = sorted((v for tid, v in used.items() if tid != pid), reverse=True)
    return {
        "cores": round(sum(used.values()) / seconds, 3),
        "event_loop_thread_cores": round(used.get(pid, 0.0) / seconds, 3),
        "other_threads_cores": round(sum(others) / seconds, 3),
        "threads": len(after),
        "threads_busy": sum(1 for v in others if v / seconds >= 0.01),
        "busiest_other_threads_cores": [round(v / seconds, 3) for v in others[:5]],
    }


# -- reading back the writes -------------------------------------------------------------------


def verify(
    http: httpx.Client, collection: str, ledger: dict[str, tuple[int, ...]], work: Workload
) -> dict[str, Any]:
    ids, found = sorted(ledger), dict[str, dict[str, Any]]()
    t0 = time.perf_counter()
    for lo in range(0, len(ids), VERIFY_BATCH):
        batch = ids[lo : lo + VERIFY_BATCH]
        body = {
            "filters": {"AND": [{"field": "document_id", "operator": "in", "value": batch}]},
            "limit": 1000,
            "return_vectors": True,
        }
        page = checked(http.post(f"/v1/collections/{collection}/documents/list", json=body)).json()
        found |= {d["document_id"]: d for d in page["results"]}
    absent = [i for i in ids if i not in found]
    wrong = [i for i in ids if i in found and not any(work.matches(found[i], p) for p in ledger[i])]
    return {
        "checked": len(ids),
        "missing": len(absent) + len(wrong),
        "absent": len(absent),
        "wrong_payload": len(wrong),
        "examples": (absent + wrong)[:10],
        "seconds": round(time.perf_counter() - t0, 2),
    }


# -- figures -----------------------------------------------------------------------------------


def stats(samples: list[float], seconds: float) -> dict[str, Any]:
    if not samples:
        return {"requests": 0}
    row = {k: round(v, 2) for k, v in percentiles(samples).items()}
    return {
        "requests": len(samples),
        "rps": round(len(samples) / seconds, 2),
        **row,
        "max": round(max(samples), 2),
    }


def figures(tally: Tally, seconds: float) -> dict[str, Any]:
    every = [ms for values in tally.latency.values() for ms in values]
    kinds = {
        kind: [ms for op, v in tally.latency.items() if OPS[op] == kind for ms in v]
        for kind in ("search", "write", "read")
    }
    by_status: collections.Counter[str] = collections.Counter()
    for key, n in tally.errors.items():
        by_status[key.split(" ", 1)[1]] += n
    returned = sum(k * n for k, n in tally.returned.items())
    return {
        "requests": len(every),
        "seconds": round(seconds, 2),
        "throughput_rps": round(len(every) / seconds, 2),
        "latency_ms": stats(every, seconds),
        "kinds": {k: stats(v, seconds) for k, v in kinds.items()},
        "ops": {op: stats(v, seconds) for op, v in tally.latency.items()},
        "shapes": {s: stats(v, seconds) for s, v in tally.shapes.items()},
        "search_returned": {
            "mean": round(returned / max(1, tally.returned.total()), 2),
            "min": min(tally.returned, default=None),
        },
        "errors": sum(tally.errors.values()),
        "errors_by_status": dict(by_status.most_common()),
        "errors_by_op": dict(tally.errors.most_common()),
        "error_samples": tally.samples,
        "unacknowledged_creates": tally.unacknowledged,
        "client_cpu_cores": round(tally.cpu_s / seconds, 3),
    }


def ms(row: dict[str, Any], key: str) -> str:
    return f"{row[key]:,.1f}" if key in row else "-"


def table_row(name: str, row: dict[str, Any], errors: int | None = None) -> str:
    cells = [
        f"{row['requests']:,}",
        f"{row.get('rps', 0):,.1f}",
        *(ms(row, k) for k in ("p50", "p95", "p99", "max")),
    ]
    return f"| {name} | {' | '.join(cells)} | {'-' if errors is None else f'{errors:,}'} |"


def render(fig: dict[str, Any]) -> str:
    load, check, cpu, seeded = (fig.get(k) for k in ("load", "verify", "server_cpu", "seeding"))
    procs = fig["processes"]
    lines = ["| figure | value |", "|---|---|"]
    lines.append(f"| load | {fig['clients']} clients x {fig['seconds']:g} s ({procs} client process"
                 f"{'es' if procs > 1 else ''}), {fig['docs']:,} documents seeded |")  # fmt: skip
    if load:
        lat, ops, kinds = load["latency_ms"], load["ops"], load["kinds"]
        errors = ", ".join(f"{k}: {v:,}" for k, v in load["errors_by_status"].items())
        lines += [
            f"| requests | {load['requests']:,}: search {kinds['search']['requests']:,}, write "
            f"{kinds['write']['requests']:,} (create {ops['create']['requests']:,}, replace "
            f"{ops['replace']['requests']:,}), read {kinds['read']['requests']:,} |",
            f"| **throughput** | **{load['throughput_rps']:,.1f} requests/s** (over {load['seconds']:.1f} s) |",
            f"| **latency p50 / p95 / p99 / max** | **{' / '.join(ms(lat, k) for k in ('p50', 'p95', 'p99'))}** "
            f"/ {ms(lat, 'max')} ms |",
            f"| **errors** | **{load['errors']:,}**{f' ({errors})' if errors else ''} |",
        ]
    if check:
        lines.append(f"| **acknowledged writes missing** | **{check['missing']:,}** of {check['checked']:,} "
                     f"(absent {check['absent']:,}, wrong payload {check['wrong_payload']:,}) |")  # fmt: skip
    if load:
        lines.append(f"| client CPU | {load['client_cpu_cores']:.2f} cores |")
    if cpu:
        busiest = ", ".join(f"{c:.2f}" for c in cpu["busiest_other_threads_cores"])
        lines.append(f"| server CPU | {cpu['cores']:.2f} cores: event-loop thread {cpu['event_loop_thread_cores']:.2f}, "
                     f"{cpu['threads'] - 1} other threads {cpu['other_threads_cores']:.2f} ({cpu['threads_busy']} "
                     f"above 0.01; busiest {busiest}) |")  # fmt: skip
    if fig.get("machine_busy") is not None:
        lines.append(f"| machine busy | {fig['machine_busy']:.0%} of {os.cpu_count()} cores |")
    engine = fig.get("engine", {})
    if "commit" in engine:
        dirty = " + uncommitted changes in src/siftline" if engine["uncommitted_changes"] else ""
        lines.append(f"| engine | siftline at {engine['commit']}{dirty} |")
    elif engine:
        lines.append(f"| engine | siftline from `{engine['package']}` (not a git checkout) |")
    if fig.get("profiles"):
        lines.append(
            "| profiled | yes: py-spy slows the server (see the module docstring); not a benchmark figure |"
        )
    if seeded:
        index = fig.get("index", {})
        lines.append(f"| seeding (before the load) | {seeded['docs']:,} docs in {seeded['seconds']:.1f} s "
                     f"({seeded['docs_per_s']:,.0f} docs/s, NDJSON base64); index settled in "
                     f"{index.get('seconds', '?')} s ({index.get('method', '?')}) |")  # fmt: skip
    if load:
        by_op = collections.Counter[str]()
        for key, n in load["errors_by_op"].items():
            by_op[key.split(" ", 1)[0]] += n
        lines += ["", "| requests | count | req/s | p50 ms | p95 ms | p99 ms | max ms | errors |"]
        lines += [
            "|---|---|---|---|---|---|---|---|",
            table_row("search (filtered dense top-10)", kinds["search"], by_op["search"]),
        ]
        lines += [table_row("write", kinds["write"], by_op["create"] + by_op["replace"])]
        lines += [table_row("· create (POST, vector as JSON list)", ops["create"], by_op["create"])]
        lines += [table_row("· replace (PUT)", ops["replace"], by_op["replace"])]
        lines += [table_row("read (GET execution record)", kinds["read"], by_op["read"])]
        lines += ["", "| search filter | searches | req/s | p50 ms | p95 ms | p99 ms | max ms | errors |"]
        lines += ["|---|---|---|---|---|---|---|---|"]
        lines += [table_row(f"`{shape}`", row) for shape, row in load["shapes"].items()]
        rates = ", ".join(f"{w['rate']:.0f}" for w in fig.get("timeline", []))
        lines += ["", f"Requests/s in each 5 s window: {rates}."]
        lines += [f"- error `{k}`: {v[:200]!r}" for k, v in list(load["error_samples"].items())[:5]]
    for summary in fig.get("profiles", []):
        lines += ["", server_profile.render(summary, summary["recording"])]
    lines += ["", *(f"- acceptance: {a}" for a in fig.get("acceptance", []))]
    lines += [f"- **FAILED**: {f}" for f in fig.get("failures", [])]
    return "\n".join(lines).rstrip() + "\n"


def acceptance(fig: dict[str, Any]) -> list[str]:
    load, check = fig.get("load"), fig.get("verify")
    if not load:
        return []
    size = (fig["clients"], fig["seconds"]) == (TARGET["clients"], TARGET["seconds"])
    note = "" if size else " (the target is for 50 clients x 60 s)"
    rps, p99 = load["throughput_rps"], load["latency_ms"].get("p99", float("inf"))
    out = [
        (f"throughput {rps:,.1f} requests/s ≥ {TARGET['rps']:.0f}{note}", rps >= TARGET["rps"]),
        (f"p99 {p99:,.1f} ms ≤ {TARGET['p99_ms']:.0f} ms{note}", p99 <= TARGET["p99_ms"]),
        (f"errors {load['errors']:,} = 0", load["errors"] == 0),
    ]
    if check:
        out.append((f"acknowledged writes missing {check['missing']:,} = 0", check["missing"] == 0))
    return [f"{text}: {'met' if ok else 'NOT MET'}" for text, ok in out]


# -- the run -----------------------------------------------------------------------------------


def run_load(plan: Plan, clients: int, processes: int) -> tuple[Sync, Any]:
    """Starts the client threads (or processes) and waits until every client is connected; returns the
    sync objects and the handle ``collect`` takes (``sync.go`` starts the load)."""
    ctx = multiprocessing.get_context("spawn")
    sync = Sync(
        ctx.Semaphore(0),
        ctx.Event(),
        ctx.Value("d", 0.0, lock=False),
        ctx.Array("q", 2 * clients, lock=False),
    )
    groups = [list(range(clients))[p::processes] for p in range(processes)]
    results: Any = ctx.Queue() if processes > 1 else collections.deque()
    workers: list[Any] = []
    if processes == 1:

        def in_thread() -> None:
            results.append(run_clients(plan, groups[0], sync))

        workers.append(threading.Thread(target=in_thread, daemon=True))
    else:
        workers += [ctx.Process(target=client_process, args=(plan, g, sync, results)) for g in groups]
    for w in workers:
        w.start()
    for _ in groups:
        if not sync.ready.acquire(timeout=300):
            raise StepFailed("the client processes did not get ready in 300 s")
    return sync, (workers, results)


def collect(
    sync: Sync, handle: Any, processes: int, limit: float
) -> tuple[list[Tally], list[dict[str, Any]]]:
    """Until every client has finished: a progress line every 5 s; returns the tallies and the timeline."""
    workers, results = handle
    start = sync.start.value
    tallies: list[Tally] = []
    timeline: list[dict[str, Any]] = []
    last_n, last_t = 0, start
    while len(tallies) < processes:
        tick = last_t + PROGRESS_EVERY
        while len(tallies) < processes and time.time() < tick:
            if processes == 1:
                workers[0].join(timeout=max(0.0, tick - time.time()))
                if not workers[0].is_alive():
                    if not results:
                        raise StepFailed("the clients failed (see the traceback above)")
                    tallies.append(results.popleft())
            else:
                try:
                    tallies.append(results.get(timeout=max(0.01, min(1.0, tick - time.time()))))
                except queue.Empty:
                    dead = [w for w in workers if w.exitcode not in (None, 0)]
                    if dead:
                        raise StepFailed(f"a client process exited with {dead[0].exitcode}") from None
            if time.time() - start > limit:
                raise StepFailed(f"the clients were still running {limit:.0f} s after the start")
        now = time.time()
        n, errors = sum(sync.counts[0::2]), sum(sync.counts[1::2])
        rate = (n - last_n) / max(1e-9, now - last_t)
        timeline.append({"t": round(now - start, 1), "requests": n, "rate": round(rate, 1), "errors": errors})
        print(f"load: {now - start:5.1f} s  {n:,} requests  {rate:,.1f} requests/s (last {now - last_t:.0f} s)  "
              f"{errors:,} errors", file=sys.stderr, flush=True)  # fmt: skip
        last_n, last_t = n, now
    for w in workers:
        w.join()
    return tallies, timeline


def measure(plan: Plan, args: argparse.Namespace, pid: int | None, fig: dict[str, Any]) -> Tally:
    """The load itself, with the server's CPU and (``--profile``) py-spy recording it."""
    failures: list[str] = fig["failures"]
    sync, handle = run_load(plan, args.clients, args.processes)
    recordings: list[server_profile.Recording] = []
    if args.profile and pid is None:
        failures.append("--profile needs the server's pid (--server-pid with --url)")
    elif args.profile and pid is not None:
        try:
            recordings = server_profile.start(
                pid,
                args.profile,
                args.profile_rate,
                args.profile_gil,
                args.profile_idle,
                args.profile_nonblocking,
            )
        except server_profile.ProfileError as exc:
            failures.append(f"--profile: {exc}")
    before, busy0 = cpu_seconds(pid) if pid else {}, machine_busy()
    sync.start.value = time.time()
    sync.go.set()
    try:
        tallies, fig["timeline"] = collect(sync, handle, args.processes, args.seconds + args.timeout + 120)
    finally:
        after, busy1 = cpu_seconds(pid) if pid else {}, machine_busy()
        failures += server_profile.stop(recordings)
        for w in handle[0]:
            if isinstance(w, multiprocessing.process.BaseProcess) and w.is_alive():
                w.terminate()
    tally = Tally()
    for t in tallies:
        tally.merge(t)
    seconds = max(tally.ends, default=time.time()) - sync.start.value
    fig["load"] = figures(tally, seconds)
    fig["machine_busy"] = round((busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]), 3)
    if pid and after:
        fig["server_cpu"] = server_cpu(pid, before, after, seconds)
    fig["profiles"] = []
    for r in recordings:
        if r.path.exists():
            summary = server_profile.summarize(r.path, args.profile_rate, seconds)
            behind = r.log.read_text(errors="replace").count("behind in sampling") if r.log.exists() else 0
            fig["profiles"].append(
                {"recording": r.name, "pyspy_cpu_s": round(r.cpu_s, 2), "fell_behind": behind, **summary}
            )
    return tally


def engine_source() -> dict[str, Any]:
    """Where the server's siftline comes from (the server inherits this environment, PYTHONPATH too):
    the package directory and, in a git checkout, the commit and whether src/ has uncommitted changes."""
    import siftline

    where = Path(siftline.__file__).resolve().parent
    out: dict[str, Any] = {"package": str(where)}

    def git(*cmd: str) -> str | None:
        done = subprocess.run(["git", "-C", str(where), *cmd], capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else None

    head = git("rev-parse", "--short", "HEAD")
    if head:
        out |= {"commit": head, "uncommitted_changes": bool(git("status", "--porcelain", "--", "."))}
    return out


def parse_mix(text: str) -> tuple[float, float, float]:
    parts = [float(p) for p in text.split(",")]
    if len(parts) != 3 or min(parts) < 0 or sum(parts) <= 0:
        raise argparse.ArgumentTypeError(
            "--mix is three non-negative shares: search,write,read (e.g. 70,20,10)"
        )
    total = sum(parts)
    return parts[0] / total, parts[1] / total, parts[2] / total


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=DEFAULTS["docs"], help="documents seeded before the load")
    parser.add_argument("--clients", type=int, default=DEFAULTS["clients"], help="concurrent connections")
    parser.add_argument("--seconds", type=float, default=DEFAULTS["seconds"], help="length of the load")
    parser.add_argument(
        "--mix", type=parse_mix, default=(0.7, 0.2, 0.1), help="search,write,read shares (70,20,10)"
    )
    parser.add_argument("--replace-share", type=float, default=0.1, help="share of writes that are PUTs")
    parser.add_argument(
        "--processes", type=int, default=1, help="client processes the clients are split over"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--timeout", type=float, default=120, help="s a request may take (then a transport error)"
    )
    parser.add_argument(
        "--index-timeout", type=float, default=600, help="s to poll the index before POST …/build"
    )
    parser.add_argument("--url", help="an already running server (with --key) instead of a fresh one")
    parser.add_argument("--key", help="API key for --url")
    parser.add_argument("--server-pid", type=int, help="pid of the --url server (for its CPU and --profile)")
    parser.add_argument(
        "--collection", default=COLLECTION["collection_name"], help="collection to create and seed"
    )
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                        help="a SIFTLINE_* setting for the fresh server (repeatable)")  # fmt: skip
    parser.add_argument("--profile", type=Path, help="py-spy recording of the server during the load")
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument(
        "--profile-gil", action="store_true", help="also record the GIL holder (PATH.gil.txt)"
    )
    parser.add_argument(
        "--profile-idle", action="store_true", help="also record idle threads (PATH.idle.txt)"
    )
    parser.add_argument(
        "--profile-nonblocking", action="store_true", help="py-spy --nonblocking: less overhead, less exact"
    )
    parser.add_argument("--tmp-dir", type=Path, help="where the server's temporary data directory goes")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--no-write", action="store_true", help="do not write docs/BENCHMARKS.md")
    args = parser.parse_args()
    if bool(args.url) != bool(args.key):
        parser.error("--url and --key go together")
    if not 1 <= args.processes <= args.clients:
        parser.error("--processes is 1 to --clients")
    command = shlex.join(["python", "benchmarks/load.py", *sys.argv[1:]])
    if any("=" not in item for item in args.server_env):
        parser.error("--server-env is KEY=VALUE")
    env = dict(item.split("=", 1) for item in args.server_env)
    fig: dict[str, Any] = {
        "command": command, "docs": args.docs, "clients": args.clients, "seconds": args.seconds,
        "processes": args.processes, "seed": args.seed, "mix": dict(zip(("search", "write", "read"), args.mix, strict=True)),
        "replace_share": args.replace_share, "server_env": env, "engine": engine_source(), "failures": [],
    }  # fmt: skip
    failures: list[str] = fig["failures"]
    with tempfile.TemporaryDirectory(dir=args.tmp_dir, prefix="siftline-load-") as tmp:
        server, tail = None, collections.deque[str]()
        if args.url:
            url, key, pid = args.url, args.key, args.server_pid
        else:
            server, key = start_with_key(Path(tmp) / "data", env=env)
            assert server.proc is not None
            url, pid, tail = server.url, server.proc.pid, drain_stderr(server)
        http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=600)
        try:
            response = http.post("/v1/collections", json={**COLLECTION, "collection_name": args.collection})
            if response.status_code == 409:
                raise StepFailed(f"collection '{args.collection}' exists on {url}: pass another --collection")
            checked(response)
            fig["seeding"] = seed(http, args.collection, Synthetic(args.seed), args.docs)
            fig["index"] = settle(http, args.collection, args.index_timeout)
            print(f"seeded {args.docs:,} documents in {fig['seeding']['seconds']:.1f} s; index settled in "
                  f"{fig['index']['seconds']:.1f} s", file=sys.stderr, flush=True)  # fmt: skip
            plan = Plan(url, key, args.collection, args.seed, args.docs, args.seconds, args.mix,
                        args.replace_share, args.timeout)  # fmt: skip
            tally = measure(plan, args, pid, fig)
            print(f"reading back {len(tally.ledger):,} acknowledged writes", file=sys.stderr, flush=True)
            fig["verify"] = verify(http, args.collection, tally.ledger, Workload(args.seed, args.docs))
        except (StepFailed, httpx.HTTPError, OSError) as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            http.close()
            if server is not None:
                server.stop()
            if failures and tail:
                print("server stderr (tail):\n" + "\n".join(tail), file=sys.stderr)
    fig["acceptance"] = acceptance(fig)
    print(render(fig))
    missing = fig.get("verify", {}).get("missing")
    print(f"acknowledged writes missing: {'unknown (not checked)' if missing is None else missing}")
    if args.json:
        args.json.write_text(orjson.dumps(fig, option=NUMPY | orjson.OPT_INDENT_2).decode())
    if not args.no_write and "load" in fig:
        default = (args.clients, args.seconds) == (DEFAULTS["clients"], DEFAULTS["seconds"])
        key = "load" if default else f"load-{args.clients}x{args.seconds:g}"
        write_section(
            key,
            f"Load: {args.clients} clients x {args.seconds:g} s, mixed workload, {size_label(args.docs)} documents",
            command,
            f"A real server on 127.0.0.1 with a fresh data directory and {args.docs:,} synthetic documents of "
            f"`benchmarks/synthetic.py` (seed {args.seed}, seeded by NDJSON with base64 vectors, index settled "
            f"first). {args.clients} keep-alive HTTP/1.1 clients, each request drawn by a seeded RNG: "
            f"{fig['mix']['search']:.0%} filtered dense top-10 searches (POST /v1/retrievers/execute, one of "
            f"the filters below), {fig['mix']['write']:.0%} single-document writes with a JSON number-list "
            f"vector ({args.replace_share:.0%} of them PUT replacements), {fig['mix']['read']:.0%} execution "
            "record reads (GET /v1/retrievers/executions/{id}). Latency of every request, errors included; "
            "every acknowledged write read back and compared afterwards. Server defaults (execution records "
            "on, access log at info).\n\n" + render(fig),
        )
    errors = fig.get("load", {}).get("errors")
    return 1 if failures or errors or missing is None or missing else 0


if __name__ == "__main__":
    sys.exit(main())
