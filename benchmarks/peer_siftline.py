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

``SiftlinePostgres`` (system ``siftline-pg``) is the same peer with its server on the PostgreSQL backend
over a local cluster it starts; what differs (readiness, the ef_search sweep, no JSON-lists load) is in
its docstring.
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

from peer_systems import EF_GRID, System
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
    name, title = "siftline", "Siftline over HTTP (SQLite)"
    kinds = ("dense", "filtered", "bm25", "hybrid")
    json_lists = True  # the second load, vectors as JSON number lists (unless --no-json-lists)

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.env = server_env(ctx.args) | self.storage_env()
        self.server, key = start_with_key(ctx.tmp / f"{self.name}-data", env=self.env)
        self.stderr_tail = drain_stderr(self.server)
        self.key, headers = key, {"Authorization": f"Bearer {key}"}
        self.http = httpx.Client(base_url=self.server.url, headers=headers, timeout=600)
        self.raw = RawClient(self.server.url, key)
        self.bodies: list[bytes] = []
        self.paths: dict[str, dict[int, list[str]]] = collections.defaultdict(dict)
        self.efs: dict[str, set[int]] = collections.defaultdict(set)  # ef_search the searches reported

    def storage_env(self) -> dict[str, str]:
        """The server's storage settings (the embedded SQLite backend: none, its data directory)."""
        return {}

    def watching(self) -> contextlib.AbstractContextManager[Any]:
        """Held while the documents are sent (a backend may watch its index build meanwhile)."""
        return contextlib.nullcontext()

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
        done: list[tuple[float, int]] = []  # (perf_counter when a request was answered, its documents)

        def post(item: tuple[bytes, int]) -> int:
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = httpx.Client(
                    base_url=self.http.base_url, headers=self.http.headers, timeout=600
                )
            checked(client.post(f"/v1/collections/{collection}/documents/batch", content=item[0],
                                headers={"Content-Type": NDJSON}))  # fmt: skip
            done.append((time.perf_counter(), item[1]))
            return item[1]

        n, sent = len(self.ctx.corpus), 0
        label = f"Siftline: NDJSON load into '{collection}' ({vector_format} vectors, {clients} connections)"
        with progress(label, n) as advance, self.watching():
            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                for count in pool.map(post, bodies):
                    sent += count
                    advance(count)
            seconds = time.perf_counter() - t0
        self.last_load = (t0, t0 + seconds, sorted(done))
        if sent != n:
            raise RuntimeError(f"sent {sent} documents, expected {n}")
        return {"seconds": round(seconds, 2), "docs_per_s": round(n / seconds, 1), "requests": len(bodies),
                "vector_format": vector_format, "clients": clients,
                "how": f"NDJSON, {self.ctx.args.batch:,} documents a request"}  # fmt: skip

    def load(self) -> dict[str, Any]:
        checked(self.http.post("/v1/collections", json=COLLECTION))
        out = self._post_all(str(COLLECTION["collection_name"]), "b64")
        self.load_span = self.last_load
        return out

    def index(self) -> dict[str, Any]:
        indexed = wait_indexed(self.http, self.ctx.args.poll_timeout, build_now=False)
        feature = dense_status(indexed.status) or {}
        out: dict[str, Any] = {"seconds": round(indexed.seconds, 2), "method": indexed.method,
                               "dense_feature": feature}  # fmt: skip
        if self.ctx.args.no_json_lists or not self.json_lists:
            return out
        second = {**COLLECTION, "collection_name": "synthetic_json"}
        checked(self.http.post("/v1/collections", json=second))
        out["json_lists"] = self._post_all("synthetic_json", "json")
        out["json_lists"]["until_indexed_s"] = self._poll("synthetic_json")[0]
        checked(self.http.delete("/v1/collections/synthetic_json"))
        return out

    def indexed(self, status: dict[str, Any]) -> bool:
        """Whether GET …/vector-index says every vector is in the index (SQLite: nothing pending)."""
        return settled(status)

    def _poll(self, collection: str) -> tuple[float, int, dict[str, Any]]:
        """Seconds until :meth:`indexed`, the polls it took and the last status."""
        t0, path, polls = time.perf_counter(), f"/v1/collections/{collection}/vector-index", 1
        while not self.indexed(status := checked(self.http.get(path)).json()):
            if time.perf_counter() - t0 > self.ctx.args.poll_timeout:
                raise RuntimeError(f"{collection}: not indexed after {self.ctx.args.poll_timeout:.0f} s")
            time.sleep(0.2)
            polls += 1
        return round(time.perf_counter() - t0, 2), polls, status

    # -- queries ---------------------------------------------------------------------------------

    def ready(self, kind: str) -> None:
        """The request bodies of ``kind`` (also made by a tuning sweep's first search); the search paths
        and ef_search seen so far (the sweep's) are forgotten."""
        qt = next(q for q in QUERY_TYPES if q.name == KIND_QUERY[kind])
        q = self.ctx.queries
        self.bodies = [request_body(qt, v, t) for v, t in zip(q.vectors, q.texts, strict=True)]
        self.bodies_kind = kind
        self.paths[kind].clear()
        self.efs[kind].clear()

    def search(self, kind: str, i: int) -> list[int]:
        if getattr(self, "bodies_kind", None) != kind:
            self.ready(kind)
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


# -- Siftline on PostgreSQL ----------------------------------------------------------------------

# The cluster of ``SiftlinePostgres``, for a 100k x 384 HNSW build on 2 cores and ~24 GB: shared buffers
# hold the whole database (~1 GB at 100k with BM25 postings), one parallel worker beside the leader for
# CREATE INDEX, bulk-load WAL without a checkpoint every few seconds, and NOTICEs in the server log so
# pgvector's "hnsw graph no longer fits into maintenance_work_mem" is seen. The server's own
# maintenance_work_mem is 2 GB; Siftline's builder sets its own for its session (ann.py).
PG_SETTINGS = {"shared_buffers": "2GB", "maintenance_work_mem": "2GB", "max_parallel_maintenance_workers": "1",
               "max_wal_size": "4GB", "log_min_messages": "notice"}  # fmt: skip
PG_DATABASE = "siftline"
NOT_FITTING = "hnsw graph no longer fits into maintenance_work_mem"
INDEX_STATE = """
    SELECT c.relname, i.indisvalid, p.phase FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
    LEFT JOIN pg_stat_progress_create_index p ON p.index_relid = c.oid
    WHERE c.relname LIKE 'vectors\\_hnsw\\_%'"""


class BuildWatch:
    """Polls the cluster's catalog every 0.1 s (its own connection, no HTTP) from the start of the load
    until :meth:`stop`: when the HNSW index first exists (being built with CREATE INDEX CONCURRENTLY), the
    phases its build went through, and when it became valid."""

    def __init__(self, connect: Any) -> None:
        self.connect = connect
        self.first_seen: float | None = None
        self.valid_at: float | None = None
        self.phases: list[str] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pg-build-watch", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            with self.connect() as conn:
                while True:
                    stopping = self._stop.is_set()  # one more look once stopped: the index may be valid now
                    now = time.perf_counter()
                    for _name, valid, phase in conn.execute(INDEX_STATE).fetchall():
                        self.first_seen = self.first_seen or now
                        if phase and (not self.phases or self.phases[-1] != phase):
                            self.phases.append(phase)
                        if valid and self.valid_at is None:
                            self.valid_at = now
                    if stopping:
                        return
                    self._stop.wait(0.1)
        except Exception as exc:  # the watch only adds figures: a failure is reported, never raised
            self.error = repr(exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def figures(self, load_start: float, load_end: float, done: list[tuple[float, int]]) -> dict[str, Any]:
        """Times relative to the start of the load; the load's rate before the index existed and after
        (by the requests answered before and after the build was first seen: coarse, a batch a step)."""

        def rel(t: float | None) -> float | None:
            return None if t is None else round(t - load_start, 2)

        out = {"load_s": round(load_end - load_start, 2), "first_seen_s": rel(self.first_seen),
               "valid_s": rel(self.valid_at), "phases": self.phases,
               "valid_during_load": self.valid_at is not None and self.valid_at <= load_end,
               **({"watch_error": self.error} if self.error else {})}  # fmt: skip
        seen = self.first_seen if self.first_seen is not None else load_end
        before = [(t, c) for t, c in done if t <= seen]
        after = [(t, c) for t, c in done if t > seen]
        if before:
            out["docs_before_index"] = sum(c for _, c in before)
            out["docs_per_s_before_index"] = round(out["docs_before_index"] / (before[-1][0] - load_start), 1)
        if after:
            start = before[-1][0] if before else load_start
            out["docs_with_index"] = sum(c for _, c in after)
            out["docs_per_s_with_index"] = round(out["docs_with_index"] / (after[-1][0] - start), 1)
        return out


class SiftlinePostgres(Siftline):
    """The same peer, its server on the PostgreSQL backend (``SIFTLINE_STORAGE=postgres``) over database
    ``siftline`` of a throw-away cluster started here (``peer_postgres.PostgresServer`` with
    ``PG_SETTINGS``) and stopped in :meth:`close`.

    Readiness: PostgreSQL's HNSW index (pgvector, one per dense feature) is built by the server in
    the background with CREATE INDEX CONCURRENTLY once a feature reaches the threshold, which happens
    during the load; pgvector adds every later write to it, so nothing is ever "pending". Indexed is
    therefore: GET …/vector-index reports ``path: hnsw`` (index valid) and not building for every dense
    feature at or above the threshold; ``BuildWatch`` records when the build started and ended relative to
    the load, and the load's rate before and after. ef_search: ``SIFTLINE_HNSW_EF_SEARCH``
    (``--pg-ef-search``, else ``--ef-search``, else the server's 96; widened for a filter as on SQLite)
    first, raised by the benchmark's sweep (:meth:`grid`) only when it misses the target on the tuning
    queries. No second load with JSON number lists (it would double the run for a figure the SQLite
    column already gives: the request parsing is the same)."""

    name, title = "siftline-pg", "Siftline over HTTP (PostgreSQL)"
    json_lists = False

    def __init__(self, ctx: Any) -> None:
        from peer_postgres import PostgresServer

        self.cluster = PostgresServer(**PG_SETTINGS).start()
        try:
            with self.cluster.connect() as conn:
                conn.execute(f"CREATE DATABASE {PG_DATABASE}")
            self.watch = BuildWatch(lambda: self.cluster.connect(PG_DATABASE))
            super().__init__(ctx)
        except BaseException:
            self.cluster.stop()
            raise

    def storage_env(self) -> dict[str, str]:
        env = {"SIFTLINE_STORAGE": "postgres",
               "SIFTLINE_POSTGRES_URL": self.cluster.url.replace("/postgres?", f"/{PG_DATABASE}?")}  # fmt: skip
        ef = self.ctx.args.pg_ef_search
        if ef is not None:
            env["SIFTLINE_HNSW_EF_SEARCH"] = str(ef)
        return env

    def watching(self) -> contextlib.AbstractContextManager[Any]:
        self.watch.start()  # runs on after the load, until the index is valid
        return contextlib.nullcontext()

    def indexed(self, status: dict[str, Any]) -> bool:
        return all(
            f["vectors"] < f["threshold"] or (f["path"] == "hnsw" and not f["building"])
            for f in status["features"]
        )

    def index(self) -> dict[str, Any]:
        seconds, polls, status = self._poll(str(COLLECTION["collection_name"]))
        self.watch.stop()
        below = [f["name"] for f in status["features"] if f["vectors"] < f["threshold"]]
        method = (f"polled GET …/vector-index every 0.2 s until path hnsw ({polls} poll{'s' * (polls > 1)})"
                  + (f"; below the threshold, exact by design: {', '.join(below)}" if below else ""))  # fmt: skip
        out: dict[str, Any] = {"seconds": seconds, "method": method, "dense_feature": dense_status(status) or {},
                               "build": self.watch.figures(*self.load_span)}  # fmt: skip
        with self.cluster.connect(PG_DATABASE) as conn:
            out["postgres"] = {
                name: conn.execute(f"SHOW {name}").fetchone()[0] for name in PG_SETTINGS if name != "log_min_messages"
            } | {
                "version": conn.execute("SHOW server_version").fetchone()[0],
                "pgvector": conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0],
                "database_mb": round(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 2**20),
                "hnsw_index_mb": round(conn.execute(
                    "SELECT coalesce(sum(pg_relation_size(oid)), 0) FROM pg_class WHERE relname LIKE 'vectors\\_hnsw\\_%'"
                ).fetchone()[0] / 2**20),
            }  # fmt: skip
        log = self.cluster.log.read_text(errors="replace") if self.cluster.log.exists() else ""
        out["postgres"]["graph_fit_in_memory"] = NOT_FITTING not in log
        self.ef_search = self.ef_now = int(out["dense_feature"].get("ef_search") or 96)
        return out

    # -- the search knob: ef_search, a server setting ------------------------------------------

    def grid(self, kind: str) -> list[Any]:
        """The server's ef_search first, so nothing changes when it reaches the target on the tuning
        queries; then the wider settings of the peers' grid. Each other setting restarts the Siftline
        server with another SIFTLINE_HNSW_EF_SEARCH: PostgreSQL holds all the state, so that takes a few
        seconds (on SQLite it would reload the index)."""
        if kind not in ("dense", "filtered"):
            return []
        return [{"ef_search": ef} for ef in (self.ef_search, *(e for e in EF_GRID if e > self.ef_search))]

    def use(self, kind: str, setting: Any) -> None:
        super().use(kind, setting)
        ef = int(setting["ef_search"])
        if ef == self.ef_now:
            return
        print(f"Siftline on PostgreSQL: restarting the server with SIFTLINE_HNSW_EF_SEARCH={ef}", flush=True)
        with contextlib.suppress(Exception):
            self.raw.close()
        self.server.stop()
        self.server.env["SIFTLINE_HNSW_EF_SEARCH"] = str(ef)
        self.server.start()
        self.stderr_tail = drain_stderr(self.server)
        self.raw = RawClient(self.server.url, self.key)
        self.ef_now = ef

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.watch.stop()
        super().close()  # the Siftline server first, then its database
        self.cluster.stop()
