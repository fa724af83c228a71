"""The retriever result cache and the pipeline optimizer, each compared side by side in one run.

A real server (``python -m siftline serve``) on 127.0.0.1 over a fresh data directory; every request
goes over HTTP on one keep-alive http.client connection (``scale.RawClient``), measured at the client.

A. Cache, on SciFact. The abstracts (``--scifact``: corpus.jsonl, queries-train.jsonl) are loaded into
   the collection ``scifact`` with the text extractor (title + text: MiniLM int8, FTS5 BM25), as
   ``benchmarks/quality.py`` does. A saved retriever with ``cache_config {"enabled": true}`` has one
   ``feature_search`` stage: a dense (all_minilm_l6_v2) and a BM25 search of ``{{INPUT.query}}``, top_k
   100 each, fused by RRF to final_top_k 10. Each of ``--claims`` distinct training claims (after 5
   warm-up claims) is executed twice in a row: the first must answer ``X-Cache: MISS``, the second
   ``X-Cache: HIT`` with the miss's documents and pagination, credits 0 and ``cached_from_execution_id``
   naming the miss. p50/p95 of both, and the ratio hit p50 / miss p50 (target ≤ 0.10).
B. Optimizer, at ``--docs`` synthetic documents (``benchmarks/synthetic.py``, vectors supplied, ingested
   as in ``benchmarks/scale.py`` and waited for until indexed). A saved retriever without cache_config
   (so every run is ``X-Cache: BYPASS``): ``feature_search`` (one dense search of the input vector,
   top_k 1000, final_top_k 500) → ``attribute_filter`` (``decile == 3``, passes 10 %) → ``limit`` 10.
   Each of ``--queries`` query vectors (after 10 warm-up ones) is executed with ``optimize: true`` and
   with ``optimize: false`` (alternating which goes first); each pair must return the same documents
   (ids, order, scores) and pagination. p50/p95 of both, the speedup off p50 / on p50 (target ≥ 3),
   the ``rules_applied`` seen, and the path the search took (stage metadata ``searches[0].path``).

Prints the tables; unless ``--no-write`` writes them to docs/BENCHMARKS.md (sections ``cache-scifact``
and ``optimizer-<size>``, each only when its part ran); ``--json PATH`` writes every figure. Exits 1
when a check failed (a wrong X-Cache, a hit differing from its miss, an optimized run differing from
the unoptimized one, a failed request) or, unless ``--ignore-targets``, a target was missed.

    python benchmarks/cache_optimizer.py                                   # ~15 min on 2 cores
    python benchmarks/cache_optimizer.py --skip-scifact --docs 10000 --no-write
    python benchmarks/cache_optimizer.py --docs 3000 --queries 20 --claims 20 --scifact-docs 300 \\
        --no-write --ignore-targets                                         # a smoke run, ~1 min
"""

from __future__ import annotations

import argparse
import collections
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from beir import load_corpus, load_queries
from quality import BM25_URI, DENSE_URI, ensure_loaded
from report import percentiles, write_section
from scale import (
    COLL,
    NUMPY,
    RawClient,
    StepFailed,
    checked,
    drain_stderr,
    health_floor,
    ingest,
    progress,
    server_env,
    size_label,
    wait_indexed,
)
from siftline.testing.server import start_with_key
from synthetic import COLLECTION, Synthetic

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = "scifact"
CLAIM_WARMUP = 5
QUERY_WARMUP = 10
HIT_RATIO_TARGET = 0.10  # hit p50 / miss p50, at most
SPEEDUP_TARGET = 3.0  # optimize-off p50 / optimize-on p50, at least
SEARCH_TOP_K, FINAL_TOP_K, LIMIT = 1000, 500, 10
DECILE = 3  # decile == 3 passes 10 % of the synthetic documents


@dataclass
class Reply:
    ms: float
    headers: dict[str, str]  # names lower-cased
    data: dict[str, Any]

    @property
    def cache(self) -> str:
        return self.headers.get("x-cache", "no header")


class Client(RawClient):
    """``scale.RawClient`` that also hands back the headers (X-Cache) and the time taken."""

    def send(self, path: str, body: bytes) -> Reply:
        """POST ``body``: a completed execution, else StepFailed."""
        t0 = time.perf_counter()
        self.conn.request("POST", path, body=body, headers=self.headers)
        response = self.conn.getresponse()
        content = response.read()
        elapsed = (time.perf_counter() - t0) * 1000
        if response.status >= 400:
            raise StepFailed(f"POST {path} -> {response.status}: {content[:1000]!r}")
        data = orjson.loads(content)
        if data.get("status") != "completed" or data.get("error"):
            raise StepFailed(f"POST {path}: execution not completed: {data.get('error')}")
        return Reply(elapsed, {k.lower(): v for k, v in response.getheaders()}, data)


def ranked(data: dict[str, Any]) -> list[tuple[str, float]]:
    return [(d["document_id"], d["score"]) for d in data["documents"]]


def p50(samples: list[float]) -> float:
    return percentiles(samples)["p50"]


def latency_row(samples: list[float]) -> dict[str, float]:
    return {k: round(v, 2) for k, v in percentiles(samples).items()} | {"n": len(samples)}


def stage(name: str, stage_id: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"stage_name": name, "config": {"stage_id": stage_id, "parameters": parameters}}


def create_retriever(http: httpx.Client, body: dict[str, Any]) -> str:
    """A saved retriever, named uniquely (a reused data directory keeps older retrievers and their cache)."""
    body = {**body, "retriever_name": f"{body['retriever_name']}-{time.time_ns()}"}
    return str(checked(http.post("/v1/retrievers", json=body)).json()["retriever_id"])


@dataclass
class Tally:
    """What a loop saw besides latency: header values, counters, and the problems (each a failure)."""

    seen: collections.Counter[str] = field(default_factory=collections.Counter)
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        """Counted; the first few are kept word for word (they name the issue, the count its extent)."""
        self.seen["problems"] += 1
        if len(self.problems) < 5:
            self.problems.append(text)
        elif len(self.problems) == 5:
            self.problems.append("… (further problems counted in seen.problems)")


def short(text: str, width: int = 60) -> str:
    return repr(text if len(text) <= width else text[: width - 1] + "…")


# -- A. the result cache on SciFact ------------------------------------------------------------


def hybrid_retriever() -> dict[str, Any]:
    searches = [
        {"feature_uri": uri, "query": "{{INPUT.query}}", "top_k": 100} for uri in (DENSE_URI, BM25_URI)
    ]
    return {
        "retriever_name": "bench-scifact-hybrid-cached",
        "collection_identifiers": [SCIFACT],
        "input_schema": {"query": {"type": "text", "required": True}},
        "cache_config": {"enabled": True},
        "stages": [
            stage("search", "feature_search", {"searches": searches, "fusion": "rrf", "final_top_k": 10})
        ],
    }


def check_hit(tally: Tally, text: str, miss: Reply, hit: Reply) -> None:
    """The first execution a MISS, the second a HIT with the miss's result, credits 0, a new id."""
    claim = short(text)
    tally.seen[f"first {miss.cache}"] += 1
    tally.seen[f"second {hit.cache}"] += 1
    miss_data, hit_data = miss.data, hit.data
    if miss.cache != "MISS" or miss_data.get("cache_hit") is not False:
        tally.problem(
            f"first execution of {claim}: X-Cache {miss.cache}, cache_hit {miss_data.get('cache_hit')}"
        )
    if hit.cache != "HIT" or hit_data.get("cache_hit") is not True:
        tally.problem(
            f"second execution of {claim}: X-Cache {hit.cache}, cache_hit {hit_data.get('cache_hit')}"
        )
        return
    tally.seen["hits"] += 1
    same = ranked(hit_data) == ranked(miss_data) and hit_data["pagination"] == miss_data["pagination"]
    tally.seen["hits equal to their miss"] += same
    if not same:
        tally.problem(f"the hit of {claim} differs from its miss (documents or pagination)")
    if hit_data.get("cached_from_execution_id") != miss_data["execution_id"]:
        tally.problem(f"the hit of {claim} names {hit_data.get('cached_from_execution_id')}, not the miss")
    if hit_data["stage_statistics"].get("credits_used") != 0:
        tally.problem(f"the hit of {claim} used {hit_data['stage_statistics'].get('credits_used')} credits")
    if hit_data["execution_id"] == miss_data["execution_id"]:
        tally.problem(f"the hit of {claim} reused the miss's execution_id")


def run_cache(http: httpx.Client, client: Client, args: argparse.Namespace) -> dict[str, Any]:
    docs = load_corpus(args.scifact)[: args.scifact_docs]
    t0 = time.perf_counter()
    ensure_loaded(http, docs, args.scifact_batch)
    load_s = time.perf_counter() - t0
    claims = list(dict.fromkeys(text for _, text in load_queries(args.scifact, "train")))
    claims = claims[: CLAIM_WARMUP + args.claims]
    if len(claims) < CLAIM_WARMUP + args.claims:
        raise StepFailed(f"only {len(claims)} distinct claims for {CLAIM_WARMUP} warm-up + {args.claims}")
    path = f"/v1/retrievers/{create_retriever(http, hybrid_retriever())}/execute"
    miss_ms: list[float] = []
    hit_ms: list[float] = []
    tally = Tally()
    with progress(f"{len(claims):,} claims x 2 executions (MISS then HIT)", len(claims)) as advance:
        for i, claim in enumerate(claims):
            body = orjson.dumps({"inputs": {"query": claim}})
            miss = client.send(path, body)
            hit = client.send(path, body)
            if i >= CLAIM_WARMUP:
                miss_ms.append(miss.ms)
                hit_ms.append(hit.ms)
                check_hit(tally, claim, miss, hit)
            advance(1)
    return {
        "documents": len(docs),
        "load_s": round(load_s, 1),
        "health_floor_ms": latency_row(health_floor(client, args.claims)),
        "claims": args.claims,
        "miss_ms": latency_row(miss_ms),
        "hit_ms": latency_row(hit_ms),
        "ratio": round(p50(hit_ms) / p50(miss_ms), 4),
        "hit_share": round(tally.seen["hits"] / args.claims, 4),
        "seen": dict(tally.seen),
        "problems": tally.problems,
    }


# -- B. the optimizer on the synthetic corpus --------------------------------------------------


def pipeline_retriever() -> dict[str, Any]:
    vector = {"input_mode": "vector", "value": "{{INPUT.vector}}"}
    search = {"feature_uri": DENSE_URI, "query": vector, "top_k": SEARCH_TOP_K}
    return {
        "retriever_name": "bench-optimizer",
        "collection_identifiers": [COLL],
        "input_schema": {"vector": {"type": "array", "required": True}},
        "stages": [
            stage("search", "feature_search", {"searches": [search], "final_top_k": FINAL_TOP_K}),
            stage("filter", "attribute_filter", {"field": "decile", "operator": "eq", "value": DECILE}),
            stage("top", "limit", {"limit": LIMIT}),
        ],
    }


def floor_retriever() -> dict[str, Any]:
    """The same search alone, hydrating 10 documents: what no rewrite of the pipeline can go below."""
    body = pipeline_retriever()
    search = body["stages"][0]
    search["config"]["parameters"] = {**search["config"]["parameters"], "final_top_k": LIMIT}
    return body | {"retriever_name": "bench-search-floor", "stages": [search]}


def ensure_synthetic(http: httpx.Client, world: Synthetic, args: argparse.Namespace) -> dict[str, Any]:
    """Create and fill the synthetic collection (unless a reused data directory holds it whole), then
    wait until its vectors are indexed."""
    out: dict[str, Any] = {}
    if http.get(f"/v1/collections/{COLL}").status_code == 404:
        checked(http.post("/v1/collections", json=COLLECTION))
    count = checked(http.get(f"/v1/collections/{COLL}/documents/count")).json()["count"]
    if count > args.docs:
        raise StepFailed(f"the reused collection '{COLL}' holds {count:,} documents, more than --docs")
    if count < args.docs:  # the same ids again: an upsert
        done = ingest(http, world, args.docs, args.batch, set(), "b64", 2)
        out["ingest"] = {"seconds": round(done.seconds, 1), "docs_per_s": round(done.docs_per_s)}
    indexed = wait_indexed(http, args.poll_timeout, build_now=False)
    out["index"] = {"seconds": round(indexed.seconds, 1), "method": indexed.method}
    return out


def same_result(on: dict[str, Any], off: dict[str, Any]) -> bool:
    return ranked(on) == ranked(off) and on["pagination"] == off["pagination"]


def search_path(data: dict[str, Any]) -> str:
    """The path (``hnsw``/``exact``/…) the first search of the stage named "search" took."""
    stage = data["stage_statistics"]["stages"].get("search", {})
    searches = stage.get("metadata", {}).get("searches") or [{}]
    return str(searches[0].get("path", "?"))


def note_run(tally: Tally, mode: str, reply: Reply) -> None:
    data = reply.data
    tally.seen[f"{mode} X-Cache {reply.cache}"] += 1
    tally.seen[f"{mode} path {search_path(data)}"] += 1
    if data.get("cache_hit") or reply.cache == "HIT":
        tally.problem(f"optimize {mode}: served from cache (the cache must be out of play)")
    applied = "true" if data.get("optimization_applied") else "false"
    tally.seen[f"{mode} optimization_applied {applied}"] += 1
    if mode == "on" and applied == "true":
        rules = (data.get("optimization_summary") or {}).get("rules_applied") or []
        tally.seen["rules " + (" + ".join(rules) or "(none)")] += 1
    if mode == "off" and applied == "true":
        tally.problem("optimize: false still reported optimization_applied: true")


def run_optimizer(
    http: httpx.Client, client: Client, world: Synthetic, args: argparse.Namespace
) -> dict[str, Any]:
    out = ensure_synthetic(http, world, args)
    vectors = world.query_vectors(world.query_targets(QUERY_WARMUP + args.queries, args.docs), args.docs)
    path = f"/v1/retrievers/{create_retriever(http, pipeline_retriever())}/execute"
    floor_path = f"/v1/retrievers/{create_retriever(http, floor_retriever())}/execute"
    times: dict[str, list[float]] = {"on": [], "off": [], "floor": []}
    tally = Tally()
    example: dict[str, Any] | None = None
    with progress(f"{len(vectors):,} query vectors x 2 (optimize on / off)", len(vectors)) as advance:
        for i, vector in enumerate(vectors):
            runs: dict[str, Reply] = {}
            for mode in ("on", "off") if i % 2 == 0 else ("off", "on"):
                body = orjson.dumps({"inputs": {"vector": vector}, "optimize": mode == "on"}, option=NUMPY)
                runs[mode] = client.send(path, body)
            floor = client.send(floor_path, orjson.dumps({"inputs": {"vector": vector}}, option=NUMPY))
            if i >= QUERY_WARMUP:
                times["floor"].append(floor.ms)
                for mode, reply in runs.items():
                    times[mode].append(reply.ms)
                    note_run(tally, mode, reply)
                on, off = runs["on"].data, runs["off"].data
                identical = same_result(on, off)
                tally.seen["identical pairs"] += identical
                tally.seen[f"returned {len(on['documents'])}"] += 1
                if not identical:
                    tally.problem(f"query vector {i}: optimize on and off returned different results")
                example = example or on.get("optimization_summary")
            advance(1)
    return out | {
        "docs": args.docs,
        "queries": args.queries,
        "on_ms": latency_row(times["on"]),
        "off_ms": latency_row(times["off"]),
        "speedup": round(p50(times["off"]) / p50(times["on"]), 2),
        "floor_ms": latency_row(times["floor"]),
        "best_speedup": round(p50(times["off"]) / p50(times["floor"]), 2),
        "identical": tally.seen["identical pairs"],
        "seen": dict(tally.seen),
        "example_summary": example,
        "problems": tally.problems,
    }


# -- the report --------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def counted(seen: dict[str, int], prefix: str) -> str:
    items = [f"{k.removeprefix(prefix)} x{v}" for k, v in sorted(seen.items()) if k.startswith(prefix)]
    return ", ".join(items) or "—"


def problem_lines(fig: dict[str, Any]) -> list[str]:
    count = fig["seen"].get("problems", 0)
    head = [f"- **{count} problem(s)**, the first:"] if count else []
    return head + [f"  - {p}" for p in fig["problems"]]


def render_cache(fig: dict[str, Any]) -> str:
    miss, hit, seen = fig["miss_ms"], fig["hit_ms"], fig["seen"]
    floor = fig["health_floor_ms"]["p50"]
    lines = [
        f"SciFact, {fig['documents']:,} abstracts; {fig['claims']} distinct training claims after "
        f"{CLAIM_WARMUP} warm-up, each executed twice in a row on the saved retriever (cache_config "
        '`{"enabled": true}`; one feature_search: dense + BM25, top_k 100 each, RRF, final_top_k 10).',
        "",
        "| execution | p50 ms | p95 ms | p99 ms | mean ms | X-Cache seen |",
        "|---|---|---|---|---|---|",
        f"| first (MISS) | {miss['p50']:.2f} | {miss['p95']:.2f} | {miss['p99']:.2f} | {miss['mean']:.2f} "
        f"| {counted(seen, 'first ')} |",
        f"| second (HIT) | {hit['p50']:.2f} | {hit['p95']:.2f} | {hit['p99']:.2f} | {hit['mean']:.2f} "
        f"| {counted(seen, 'second ')} |",
        "",
        f"- **hit p50 / miss p50 = {fig['ratio']:.3f}** (target ≤ {HIT_RATIO_TARGET}: "
        f"{verdict(fig['ratio'] <= HIT_RATIO_TARGET)}); miss p50 / hit p50 = {1 / fig['ratio']:.1f}x",
        f"- HTTP floor (GET /v1/health, same client) p50 {fig['health_floor_ms']['p50']:.2f} ms; "
        f"(hit p50 - floor) / (miss p50 - floor) = "
        f"{(hit['p50'] - floor) / (miss['p50'] - floor):.3f}",
        f"- HITs among second executions: {seen.get('hits', 0)}/{fig['claims']} ({fig['hit_share']:.0%}); "
        f"hits with the miss's documents and pagination: {seen.get('hits equal to their miss', 0)}",
    ]
    return "\n".join(lines + problem_lines(fig)) + "\n"


def render_optimizer(fig: dict[str, Any]) -> str:
    on, off, seen = fig["on_ms"], fig["off_ms"], fig["seen"]
    lines = [
        f"{fig['docs']:,} synthetic documents (384-d, `benchmarks/synthetic.py`); "
        f"{fig['queries']} query vectors after {QUERY_WARMUP} warm-up, each run with `optimize: true` and "
        "`optimize: false` (alternating which goes first). Saved retriever without cache_config: "
        f"`feature_search` (dense, top_k {SEARCH_TOP_K}, final_top_k {FINAL_TOP_K}) → `attribute_filter` "
        f"(decile == {DECILE}, 10 %) → `limit` {LIMIT}.",
    ]
    if fig.get("ingest"):
        lines.append(
            f"Ingest {fig['ingest']['docs_per_s']:,} docs/s; indexed in {fig['index']['seconds']} s."
        )
    lines += [
        "",
        "| optimizer | p50 ms | p95 ms | p99 ms | mean ms | search path | optimization_applied |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, row in (("off", off), ("on", on)):
        lines.append(
            f"| optimize: {'true' if mode == 'on' else 'false'} | {row['p50']:.2f} | {row['p95']:.2f} "
            f"| {row['p99']:.2f} | {row['mean']:.2f} | {counted(seen, f'{mode} path ')} "
            f"| {counted(seen, f'{mode} optimization_applied ')} |"
        )
    if fig.get("floor_ms"):
        row = fig["floor_ms"]
        lines.append(
            f"| the search alone (final_top_k {LIMIT}: the floor) | {row['p50']:.2f} | {row['p95']:.2f} "
            f"| {row['p99']:.2f} | {row['mean']:.2f} | | |"
        )
    lines += [
        "",
        f"- **speedup off p50 / on p50 = {fig['speedup']:.2f}x** (target ≥ {SPEEDUP_TARGET:g}: "
        f"{verdict(fig['speedup'] >= SPEEDUP_TARGET)})",
        f"- the most any rewrite could reach here, off p50 / the search alone's p50: {fig.get('best_speedup')}x "
        "(the same HNSW search of 1,000 candidates runs either way; results must stay identical)",
        f"- identical documents (ids, order, scores) and pagination: {fig['identical']}/{fig['queries']} "
        f"pairs; documents returned: {counted(seen, 'returned ')}",
        f"- rules_applied (optimize: true): {counted(seen, 'rules ')}",
        f"- X-Cache: on {counted(seen, 'on X-Cache ')}; off {counted(seen, 'off X-Cache ')}",
    ]
    if fig.get("example_summary"):
        lines.append(f"- an optimization_summary: `{orjson.dumps(fig['example_summary']).decode()}`")
    return "\n".join(lines + problem_lines(fig)) + "\n"


# -- main --------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100_000, help="synthetic documents for the optimizer")
    parser.add_argument("--queries", type=int, default=200, help="measured query vectors (optimizer)")
    parser.add_argument("--claims", type=int, default=200, help="measured SciFact claims (cache)")
    parser.add_argument("--scifact", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--scifact-docs", type=int, help="load only the first N abstracts (a smoke run)")
    parser.add_argument("--scifact-batch", type=int, default=256, help="abstracts per documents/batch")
    parser.add_argument("--batch", type=int, default=5000, help="synthetic documents per documents/batch")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--hnsw-threshold", type=int, help="SIFTLINE_HNSW_THRESHOLD (default: the server's)")
    parser.add_argument("--ef-search", type=int, help="SIFTLINE_HNSW_EF_SEARCH (default: the server's)")
    parser.add_argument("--poll-timeout", type=float, default=1800, help="s to poll before POST …/build")
    parser.add_argument("--skip-scifact", action="store_true", help="skip A (the cache on SciFact)")
    parser.add_argument("--skip-optimizer", action="store_true", help="skip B (the optimizer)")
    parser.add_argument("--tmp-dir", type=Path, help="where the server's temporary data directory goes")
    parser.add_argument("--data-dir", type=Path, help="server data directory to create or reuse (no reload)")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--no-write", action="store_true", help="do not write docs/BENCHMARKS.md")
    parser.add_argument("--ignore-targets", action="store_true", help="exit 0 even when a target is missed")
    return parser.parse_args()


def run(args: argparse.Namespace, data_dir: Path, fig: dict[str, Any]) -> None:
    """Both parts against one server; a part that fails is reported and the other still runs."""
    failures: list[str] = fig["failures"]
    server, key = start_with_key(data_dir, env=server_env(args))
    stderr_tail = drain_stderr(server)
    http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=900)
    parts: dict[str, Callable[[Client], dict[str, Any]]] = {}
    if not args.skip_scifact:
        parts["cache"] = lambda client: run_cache(http, client, args)
    if not args.skip_optimizer:
        parts["optimizer"] = lambda client: run_optimizer(http, client, Synthetic(args.seed), args)
    try:
        for name, part in parts.items():
            client = Client(server.url, key)  # a connection a failed part broke is not reused
            try:
                fig[name] = part(client)
                failures += [f"{name}: {p}" for p in fig[name]["problems"]]
            except (StepFailed, httpx.HTTPError, OSError, KeyError, TypeError) as exc:
                failures.append(f"{name}: {exc!r}")
            finally:
                client.close()
    finally:
        http.close()
        server.stop()
        if failures and stderr_tail:
            print("server stderr (tail):\n" + "\n".join(stderr_tail), file=sys.stderr)


def main() -> int:
    args = parse_args()
    command = shlex.join(["python", "benchmarks/cache_optimizer.py", *sys.argv[1:]])
    fig: dict[str, Any] = {"command": command, "failures": [], "targets": []}
    with tempfile.TemporaryDirectory(dir=args.tmp_dir, prefix="siftline-cache-opt-") as tmp:
        run(args, args.data_dir or Path(tmp) / "data", fig)

    sections = []
    if "cache" in fig:
        c = fig["cache"]
        table = render_cache(c)
        met = c["ratio"] <= HIT_RATIO_TARGET
        fig["targets"].append(
            f"cache: hit p50 / miss p50 = {c['ratio']:.3f} ≤ {HIT_RATIO_TARGET}: {verdict(met)}"
        )
        sections.append(("cache-scifact", "Result cache: SciFact hybrid, MISS vs HIT over HTTP", table))
    if "optimizer" in fig:
        o = fig["optimizer"]
        table = render_optimizer(o)
        met = o["speedup"] >= SPEEDUP_TARGET
        fig["targets"].append(f"optimizer: speedup {o['speedup']:.2f}x ≥ {SPEEDUP_TARGET:g}: {verdict(met)}")
        label = size_label(o["docs"])
        sections.append(
            (f"optimizer-{label}", f"Optimizer: search → filter → limit at {label} documents", table)
        )
    for _, title, table in sections:
        print(f"\n## {title}\n\n{table}")
    for line in fig["targets"]:
        print(f"target {line}")
    for failure in fig["failures"]:
        print(f"FAILED: {failure}")
    if args.json:
        args.json.write_text(orjson.dumps(fig, option=NUMPY | orjson.OPT_INDENT_2).decode())
    if not args.no_write:
        for key, title, table in sections:
            write_section(key, title, command, "A real server on 127.0.0.1, one keep-alive client, "
                          "latency measured at the client; execution records on (server default).\n\n" + table)  # fmt: skip
    missed = any("NOT MET" in t for t in fig["targets"]) and not args.ignore_targets
    return 1 if fig["failures"] or missed else 0


if __name__ == "__main__":
    sys.exit(main())
