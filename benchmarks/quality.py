"""Retrieval quality through the HTTP API on SciFact, beside the same methods computed directly.

A real server on 127.0.0.1 loads the corpus (title + text: MiniLM int8 embedding, FTS5 BM25) through
POST …/documents/batch; each training claim is executed ad hoc (POST /v1/retrievers/execute) by three
retrievers: BM25 alone, dense alone and RRF hybrid (k = 60 over the top 100 of each). In the same run
the three methods are computed without Siftline's API or services, with the libraries themselves:
sqlite3 FTS5 (``porter unicode61``, the OR of the query's quoted words, ``bm25()``), the MiniLM
int8 ONNX model on onnxruntime (through the thin ``TextEmbedder`` wrapper) with exact numpy cosine,
and RRF over the two top-100 lists. nDCG@10 as pytrec_eval / BEIR (linear gains, mean over the judged
claims) of both, with HTTP latency; exits 1 when API and direct differ by more than 0.005 or a figure
is below its threshold (the table is still printed and written to docs/BENCHMARKS.md).

    python benchmarks/quality.py [--scifact ../shared/data/scifact] [--data-dir DIR] [--cache-dir DIR]
                                 [--queries N] [--batch 256] [--no-write]

``--data-dir`` keeps the server's data (a collection already holding every document is not reloaded)
and ``--cache-dir`` the direct corpus embeddings (.npy), so reruns skip the two ~6 minute embeddings.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.progress import Progress

from beir import Doc, load_corpus, load_qrels, load_queries, mean_ndcg
from report import percentiles, write_section
from siftline.features.embedder import TextEmbedder
from siftline.testing.server import Server, siftline

ROOT = Path(__file__).resolve().parents[1]
COLLECTION = "scifact"
TOP_K = 100  # each search's depth, and the fused list's
RRF_K = 60
CUTOFF = 10  # nDCG@10
TOLERANCE = 0.005
BM25_URI = "mixpeek://text_extractor@v1/bm25"
DENSE_URI = "mixpeek://text_extractor@v1/all_minilm_l6_v2"
METHODS = ("BM25", "dense", "RRF hybrid")
THRESHOLDS = {"BM25": 0.68, "dense": 0.65, "RRF hybrid": 0.71}
_WORD = re.compile(r"\w+", re.UNICODE)

Runs = dict[str, list[str]]  # query id → document ids, best first


# -- through the HTTP API -------------------------------------------------------------------------


@contextmanager
def progress_bar(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A rich bar on a terminal, else (output to a log) a line every 10 %; yields ``advance(n)``."""
    if sys.stderr.isatty():
        with Progress() as progress:
            task = progress.add_task(label, total=total)
            yield lambda n: progress.advance(task, n)
        return
    done = 0
    t0 = time.perf_counter()

    def advance(n: int) -> None:
        nonlocal done
        before, done = done, done + n
        if total and (done * 10 // total > before * 10 // total or done == total):
            print(
                f"{label}: {done:,}/{total:,} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True
            )

    yield advance


def checked(response: httpx.Response) -> httpx.Response:
    """The response, or a RuntimeError naming the request and the server's answer."""
    if response.is_error:
        request = response.request
        raise RuntimeError(
            f"{request.method} {request.url.path} -> {response.status_code}: {response.text[:2000]}"
        )
    return response


def search(uri: str) -> dict[str, Any]:
    return {"feature_uri": uri, "query": "{{INPUT.query}}", "top_k": TOP_K}


def retriever_stages(method: str) -> list[dict[str, Any]]:
    """The ad hoc stages of one method: a feature_search stage with one or two searches."""
    searches = {
        "BM25": [search(BM25_URI)],
        "dense": [search(DENSE_URI)],
        "RRF hybrid": [search(BM25_URI), search(DENSE_URI)],
    }[method]
    parameters: dict[str, Any] = {"searches": searches, "final_top_k": TOP_K}
    if len(searches) > 1:
        parameters |= {"fusion": "rrf", "rrf_k": RRF_K}
    return [{"stage_name": "search", "config": {"stage_id": "feature_search", "parameters": parameters}}]


def ensure_loaded(
    http: httpx.Client,
    docs: list[Doc],
    batch: int,
    *,
    collection: str = COLLECTION,
    vector_configs: list[dict[str, Any]] | None = None,
    vectors: Callable[[Doc], dict[str, Any]] | None = None,
) -> float:
    """Create the collection and load the documents it lacks; returns the seconds spent (0 if none).

    ``vector_configs`` adds user vector features to the collection (title + text are always embedded and
    BM25-indexed); ``vectors(doc)`` gives a document's user vectors by name.
    """
    if http.get(f"/v1/collections/{collection}").status_code == 404:
        extractor = {"feature_extractor_name": "text_extractor", "version": "v1",
                     "input_mappings": {"text": ["title", "text"]}}  # fmt: skip
        body: dict[str, Any] = {"collection_name": collection, "feature_extractor": extractor}
        if vector_configs:
            body["vector_configs"] = vector_configs
        checked(http.post("/v1/collections", json=body))
    count = checked(http.get(f"/v1/collections/{collection}/documents/count")).json()["count"]
    if count >= len(docs):
        print(f"collection '{collection}' already holds {count:,} documents: not reloading", file=sys.stderr)
        return 0.0
    present = existing_ids(http, collection) if count else set()
    missing = [d for d in docs if d.doc_id not in present]
    spent = 0.0
    with progress_bar(
        f"loading {len(missing):,} documents (embedding title + text)", len(missing)
    ) as advance:
        for start in range(0, len(missing), batch):
            chunk = missing[start : start + batch]
            rows = [{"document_id": d.doc_id, "title": d.title, "text": d.text} for d in chunk]
            if vectors is not None:
                rows = [row | {"vectors": vectors(d)} for row, d in zip(rows, chunk, strict=True)]
            t0 = time.perf_counter()
            checked(http.post(f"/v1/collections/{collection}/documents/batch", json={"documents": rows}))
            spent += time.perf_counter() - t0
            advance(len(chunk))
    return spent


def existing_ids(http: httpx.Client, collection: str = COLLECTION) -> set[str]:
    """Every document id of the collection (cursor pagination over documents/list)."""
    ids: set[str] = set()
    body: dict[str, Any] = {"limit": 1000}
    while True:
        page = checked(http.post(f"/v1/collections/{collection}/documents/list", json=body)).json()
        ids.update(d["document_id"] for d in page["results"])
        cursor = page["pagination"].get("next_cursor")
        if not cursor or not page["results"]:
            return ids
        body = {"limit": 1000, "cursor": cursor}


def run_api(
    http: httpx.Client, queries: list[tuple[str, str]]
) -> tuple[dict[str, Runs], dict[str, list[float]]]:
    """Every query through every method (interleaved); returns the top-10 runs and latencies in ms."""
    runs: dict[str, Runs] = {m: {} for m in METHODS}
    latencies: dict[str, list[float]] = {m: [] for m in METHODS}
    stages = {m: retriever_stages(m) for m in METHODS}
    with progress_bar(
        f"{len(queries):,} claims x {len(METHODS)} retrievers over HTTP", len(queries)
    ) as advance:
        for qid, text in queries:
            for method in METHODS:
                body = {
                    "collection_identifiers": [COLLECTION],
                    "input_schema": {"query": {"type": "text", "required": True}},
                    "inputs": {"query": text},
                    "limit": CUTOFF,
                    "stages": stages[method],
                }
                t0 = time.perf_counter()
                response = http.post("/v1/retrievers/execute", json=body)
                latencies[method].append((time.perf_counter() - t0) * 1000)
                data = checked(response).json()
                if data.get("error"):
                    raise RuntimeError(f"{method} failed on claim {qid}: {data['error']}")
                runs[method][qid] = [d["document_id"] for d in data["documents"]]
            advance(1)
    return runs, latencies


# -- directly with the libraries ------------------------------------------------------------------


def fts_match(text: str) -> str:
    """The OR of the query's lower-cased words, each quoted (no FTS5 syntax leaks), repeats dropped."""
    return " OR ".join(f'"{w}"' for w in dict.fromkeys(_WORD.findall(text.lower())))


def bm25_direct(docs: list[Doc], queries: list[tuple[str, str]]) -> Runs:
    """sqlite3 FTS5 in memory over title + " " + text, ranked by bm25(), top 100."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE fts USING fts5(text, tokenize='porter unicode61')")
    conn.executemany(
        "INSERT INTO fts(rowid, text) VALUES (?, ?)", ((i, d.joined) for i, d in enumerate(docs))
    )
    runs: Runs = {}
    for qid, text in queries:
        rows = conn.execute(
            "SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY bm25(fts), rowid LIMIT ?",
            (fts_match(text), TOP_K),
        ).fetchall()
        runs[qid] = [docs[r[0]].doc_id for r in rows]
    conn.close()
    return runs


def corpus_embeddings(embedder: TextEmbedder, docs: list[Doc], cache_dir: Path | None) -> np.ndarray:
    """(n, 384) unit vectors of title + " " + text, from ``cache_dir`` when an identical run saved them."""
    digest = hashlib.sha1(f"{embedder.name}|{embedder.max_tokens}".encode())
    for d in docs:
        digest.update(f"\x00{d.doc_id}\x00{d.joined}".encode())
    path = cache_dir / f"scifact-corpus-{digest.hexdigest()[:16]}.npy" if cache_dir else None
    if path is not None and path.is_file():
        print(f"corpus embeddings from {path}", file=sys.stderr)
        return np.load(path)
    texts = [d.joined for d in docs]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths batch together
    out = np.empty((len(texts), embedder.dimension), dtype=np.float32)
    with progress_bar(f"embedding {len(texts):,} documents directly (onnxruntime)", len(texts)) as advance:
        for start in range(0, len(order), 256):
            idx = order[start : start + 256]
            out[idx] = embedder.embed([texts[i] for i in idx])
            advance(len(idx))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, out)
    return out


def dense_direct(
    embedder: TextEmbedder, matrix: np.ndarray, docs: list[Doc], queries: list[tuple[str, str]]
) -> Runs:
    """Exact cosine (dot of unit vectors) top 100 with numpy."""
    vectors = embedder.embed([text for _, text in queries])
    scores = vectors @ matrix.T
    runs: Runs = {}
    for row, (qid, _) in enumerate(queries):
        best = np.argpartition(-scores[row], TOP_K - 1)[:TOP_K]
        best = best[np.argsort(-scores[row][best], kind="stable")]
        runs[qid] = [docs[int(i)].doc_id for i in best]
    return runs


def rrf(lists: Sequence[Sequence[str]], k: int = RRF_K, descending_ids: bool = False) -> list[str]:
    """Reciprocal rank fusion, Σ 1 / (k + rank) with 1-based positions; equal sums ordered by document id."""
    fused: dict[str, float] = {}
    for ranked in lists:
        for rank, doc_id in enumerate(ranked, start=1):
            fused[doc_id] = fused.get(doc_id, 0.0) + 1.0 / (k + rank)
    ordered = sorted(fused, reverse=descending_ids)  # the stable sort below keeps this among ties
    return sorted(ordered, key=lambda d: -fused[d])[:TOP_K]


def tied_at_cutoff(lists: Sequence[Sequence[str]]) -> bool:
    """Whether RRF ranks 10 and 11 have the same fused score (so the tie order decides the top 10)."""
    fused: dict[str, float] = {}
    for ranked in lists:
        for rank, doc_id in enumerate(ranked, start=1):
            fused[doc_id] = fused.get(doc_id, 0.0) + 1.0 / (RRF_K + rank)
    scores = sorted(fused.values(), reverse=True)
    return len(scores) > CUTOFF and scores[CUTOFF - 1] == scores[CUTOFF]


# -- the report -----------------------------------------------------------------------------------


@dataclass
class Timings:
    phases: dict[str, float] = field(default_factory=dict)

    def timed(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        value = fn()
        self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - t0
        return value


def same_top(a: Runs, b: Runs, qids: list[str]) -> int:
    return sum(a.get(q, [])[:CUTOFF] == b.get(q, [])[:CUTOFF] for q in qids)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scifact", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument(
        "--data-dir", type=Path, help="server data directory to create or reuse (default: a temp dir)"
    )
    parser.add_argument(
        "--cache-dir", type=Path, help="where to save / reuse the direct corpus embeddings (.npy)"
    )
    parser.add_argument("--queries", type=int, help="only the first N training claims (a smoke run)")
    parser.add_argument("--batch", type=int, default=256, help="documents per POST …/documents/batch")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args()
    started = time.perf_counter()
    timings = Timings()

    docs = load_corpus(args.scifact)
    qrels = load_qrels(args.scifact, "train")
    queries = [(q, t) for q, t in load_queries(args.scifact, "train") if q in qrels][: args.queries]
    qids = [q for q, _ in queries]
    print(f"{len(docs):,} documents, {len(queries):,} judged training claims", file=sys.stderr)

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        server = Server(data_dir).start()
        try:
            created = siftline("keys", "create", "--data-dir", str(data_dir))
            if created.returncode:
                raise RuntimeError(f"siftline keys create failed: {created.stderr}")
            key = created.stdout.strip().splitlines()[-1]
            with httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=900
            ) as http:
                load_s = ensure_loaded(http, docs, args.batch)
                api_runs, latencies = timings.timed("queries over HTTP", lambda: run_api(http, queries))
        finally:
            server.stop()

    direct: dict[str, Runs] = {}
    direct["BM25"] = timings.timed("direct BM25", lambda: bm25_direct(docs, queries))
    embedder = TextEmbedder()
    matrix = timings.timed(
        "direct corpus embedding", lambda: corpus_embeddings(embedder, docs, args.cache_dir)
    )
    direct["dense"] = timings.timed("direct dense", lambda: dense_direct(embedder, matrix, docs, queries))
    pairs = {q: (direct["BM25"][q], direct["dense"][q]) for q in qids}
    direct["RRF hybrid"] = {q: rrf(pairs[q]) for q in qids}
    rrf_desc = {q: rrf(pairs[q], descending_ids=True) for q in qids}
    ties = sum(tied_at_cutoff(pairs[q]) for q in qids)

    rows = []
    failed = []
    for method in METHODS:
        api = mean_ndcg(api_runs[method], qrels, qids, CUTOFF)
        lib = mean_ndcg(direct[method], qrels, qids, CUTOFF)
        diff = api - lib
        ok = abs(diff) <= TOLERANCE and api >= THRESHOLDS[method]
        if not ok:
            failed.append(method)
        lat = percentiles(latencies[method])
        rows.append(
            f"| {method} | {api:.4f} | {lib:.4f} | {diff:+.4f} | ≥ {THRESHOLDS[method]:.2f}, ±{TOLERANCE} "
            f"| {'pass' if ok else 'FAIL'} | {same_top(api_runs[method], direct[method], qids)}/{len(qids)} "
            f"| {lat['p50']:.1f} ms | {lat['p95']:.1f} ms |"
        )
    table = (
        "| method | nDCG@10 via API | nDCG@10 direct | difference | threshold | pass | same top 10 "
        "| HTTP p50 | HTTP p95 |\n|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    total_s = time.perf_counter() - started
    phases = ", ".join(f"{name} {secs:.0f} s" for name, secs in timings.phases.items())
    loaded = f"loading over HTTP {load_s:.0f} s" if load_s else "collection reused (not reloaded)"
    desc_ndcg = mean_ndcg(rrf_desc, qrels, qids, CUTOFF)
    notes = (
        f"Run time {total_s / 60:.1f} min ({loaded}, {phases}). RRF ties: for {ties} of {len(qids)} claims "
        f"ranks 10 and 11 of the direct fusion have equal sums; direct RRF with ties ordered by document id "
        f"ascending {mean_ndcg(direct['RRF hybrid'], qrels, qids, CUTOFF):.4f}, descending (trec_eval's "
        f"order) {desc_ndcg:.4f}."
    )
    print(table)
    print(notes)
    if not args.no_write:
        command = "python benchmarks/quality.py" + (f" --queries {args.queries}" if args.queries else "")
        body = (
            f"SciFact ({len(docs):,} abstracts), the {len(qids)} training claims with judgements "
            "(`queries-train.jsonl`, `qrels-train.tsv`). *Via API*: a real server on 127.0.0.1 loads the "
            "corpus through `POST …/documents/batch` (title + text: MiniLM int8 at 256 tokens, FTS5 BM25) "
            "and "
            "each claim is executed ad hoc through `POST /v1/retrievers/execute` with one `feature_search` "
            f"stage: the bm25 search, the all_minilm_l6_v2 search, or both fused by RRF (k = {RRF_K}), each "
            f"search top_k {TOP_K}, `final_top_k` {TOP_K}, `limit` {CUTOFF}. *Direct*: the same methods "
            "without Siftline's API or services: sqlite3 FTS5 in memory (`porter unicode61`, the OR of the "
            "claim's quoted lower-cased words, ranked by `bm25()`), the int8 MiniLM on onnxruntime "
            "(`TextEmbedder`: 256 tokens, mean pooling, L2 norm) with exact numpy cosine, and RRF over the "
            "two top-100 lists (equal sums ordered by document id). nDCG@10 as pytrec_eval/BEIR: linear "
            "gains, ideal DCG from the judged documents, mean over the claims. HTTP latency per request, "
            "one client, measured at the client.\n\n" + table + "\n" + notes + "\n"
        )
        write_section(
            "quality", f"Retrieval quality on SciFact (nDCG@10, {len(qids)} training claims)", command, body
        )
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
