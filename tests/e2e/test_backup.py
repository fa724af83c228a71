"""``siftline backup | verify | restore`` against a real server that keeps serving writes and searches.

One scenario (module fixture): a server with a collection (text: BM25; supplied 384-d vectors); four clients
write batches of documents, delete some and search, each write acknowledged by a 200 and logged with the
times it was sent and acknowledged; ``siftline backup`` runs from its own process meanwhile. The backup is
restored into a new data directory and a second server is started on it. What must hold:

- every write acknowledged before the backup started is there, every delete acknowledged before it is
  not, nothing sent after it ended is there, and each batch is all there or all missing (one snapshot);
- the restored directory passes ``siftline verify``;
- searches agree: exact dense searches restricted to the documents acknowledged before the backup give
  the same ids and scores on the original server (which has more documents by then) and the restored
  one; unrestricted dense and BM25 searches of the restored server match a brute-force reference computed
  here from the documents it holds (BM25 statistics depend on every document, so the original server,
  holding more, cannot be the reference for those).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from siftline.storage import text
from siftline.testing.server import Server, siftline, start_with_key

pytestmark = pytest.mark.slow

DIM = 384
DENSE = "mixpeek://text_extractor@v1/all_minilm_l6_v2"
BM25 = "mixpeek://text_extractor@v1/bm25"
COLLECTION = {
    "collection_name": "docs",
    "feature_extractor": {"feature_extractor_name": "text_extractor", "input_mappings": {"text": "text"}},
    "payload_indexes": [{"field_name": "group", "type": "keyword"}],  # an index on an expression
}
WORDS = ["river", "stone", "cloud", "ember", "harbor", "lantern", "meadow", "copper", "falcon", "orchid"]
DOCS = "/v1/collections/docs/documents"
CLIENTS = 4
TOP_K = 10


def vector(doc_id: str) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(doc_id.encode())).standard_normal(DIM)


def body_text(doc_id: str) -> str:
    rng = np.random.default_rng(zlib.crc32(doc_id.encode()) + 1)
    picked = rng.choice(WORDS, size=int(rng.integers(2, 8)))
    return " ".join(picked) + f" tag{doc_id.replace('-', 'x')}"


def document(doc_id: str) -> dict[str, Any]:
    return {
        "document_id": doc_id,
        "text": body_text(doc_id),
        "group": f"G{zlib.crc32(doc_id.encode()) % 5}",
        "vectors": {"all_minilm_l6_v2": [round(float(x), 6) for x in vector(doc_id)]},
    }


@dataclass
class Write:
    kind: str  # put | delete
    ids: list[str]
    sent: float
    acked: float | None = None


@dataclass
class Clients:
    """Four clients writing, deleting and searching until stopped; every request must succeed."""

    url: str
    key: str
    writes: list[Write] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    searches: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, n: int) -> None:
        http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=60)
        mine: list[str] = []
        i = 0
        try:
            while not self.stop.is_set():
                ids = [f"c{n}-{i}-{j}" for j in range(3)]
                self._write(
                    http, Write("put", ids, time.monotonic()), {"documents": [document(d) for d in ids]}
                )
                mine += ids
                if i % 4 == 3:
                    victim = mine.pop(0)
                    self._write(http, Write("delete", [victim], time.monotonic()), None)
                query = vector(f"q{n}-{i}")
                done = http.post("/v1/retrievers/execute", json=search_body(DENSE, query))
                if done.status_code != 200:
                    self.failures.append(f"search: {done.status_code} {done.text[:200]}")
                self.searches += 1
                i += 1
        finally:
            http.close()

    def _write(self, http: httpx.Client, write: Write, body: dict[str, Any] | None) -> None:
        if body is None:
            done = http.delete(f"{DOCS}/{write.ids[0]}")
        else:
            done = http.post(f"{DOCS}/batch", json=body)
        if done.status_code == 200:
            write.acked = time.monotonic()
        else:
            self.failures.append(f"{write.kind} {write.ids}: {done.status_code} {done.text[:200]}")
        self.writes.append(write)


def search_body(uri: str, query: Any, only: list[str] | None = None) -> dict[str, Any]:
    mode = "text" if isinstance(query, str) else "vector"
    value = query if isinstance(query, str) else [float(x) for x in query]
    search = {"feature_uri": uri, "query": {"input_mode": mode, "value": value}, "top_k": TOP_K}
    body: dict[str, Any] = {
        "collection_identifiers": ["docs"],
        "stages": [
            {
                "stage_name": "search",
                "config": {
                    "stage_id": "feature_search",
                    "parameters": {"searches": [search], "final_top_k": TOP_K},
                },
            }
        ],
    }
    if only is not None:
        body["filters"] = {"AND": [{"field": "document_id", "operator": "in", "value": only}]}
    return body


def hits(http: httpx.Client, body: dict[str, Any]) -> list[tuple[str, float]]:
    done = http.post("/v1/retrievers/execute", json=body)
    assert done.status_code == 200, done.text
    out = done.json()
    assert out["status"] == "completed", out
    return [(d["document_id"], float(d["score"])) for d in out["documents"]]


def all_documents(http: httpx.Client) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        page = http.post(f"{DOCS}/list", json={"limit": 1000, "return_vectors": True, "cursor": cursor})
        assert page.status_code == 200, page.text
        out = page.json()
        found.update({d["document_id"]: d for d in out["results"]})
        cursor = out["pagination"]["next_cursor"]
        if cursor is None:
            return found


@dataclass
class Scenario:
    original: Server
    restored: Server
    key: str
    backup: Path
    writes: list[Write]
    started: float  # monotonic time the backup command was launched
    ended: float
    backup_run: Any
    verify_run: Any
    tmp: Path

    def client(self, server: Server) -> httpx.Client:
        return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=60)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    tmp = tmp_path_factory.mktemp("backup")
    original, key = start_with_key(tmp / "original")
    servers = [original]
    try:
        with httpx.Client(
            base_url=original.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as http:
            assert http.post("/v1/collections", json=COLLECTION).status_code == 200
            seed = [document(f"s-{i}") for i in range(200)]
            assert http.post(f"{DOCS}/batch", json={"documents": seed}).status_code == 200
        seeded = Write("put", [d["document_id"] for d in seed], 0.0, 0.0)
        clients = Clients(original.url, key)
        threads = [threading.Thread(target=clients.run, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(2.0)
        started = time.monotonic()
        backup_run = siftline("backup", str(tmp / "backup"), "--data-dir", str(tmp / "original"))
        ended = time.monotonic()
        time.sleep(0.5)
        clients.stop.set()
        for t in threads:
            t.join(timeout=60)
        assert backup_run.returncode == 0, backup_run.stderr
        assert clients.failures == [], clients.failures[:5]
        assert clients.searches > 0
        restore_run = siftline("restore", str(tmp / "backup"), "--data-dir", str(tmp / "restored"))
        assert restore_run.returncode == 0, restore_run.stderr
        verify_run = siftline("verify", str(tmp / "restored"))
        restored = Server(tmp / "restored").start()
        servers.append(restored)
        yield Scenario(
            original, restored, key, tmp / "backup", [seeded, *clients.writes], started, ended,
            backup_run, verify_run, tmp,
        )  # fmt: skip
    finally:
        for server in servers:
            server.kill()


def test_writes_went_on_while_the_backup_ran(scenario: Scenario) -> None:
    during = [w for w in scenario.writes if w.acked and scenario.started < w.acked < scenario.ended]
    assert during, "no write was acknowledged while the backup ran"
    manifest = json.loads((scenario.backup / "manifest.json").read_text())
    assert manifest["files"][0]["path"] == "siftline.db"
    assert manifest["census"]["collections"][0]["documents"] > 0
    # the server had never saved an index file: the backup says the index is rebuilt, and verify agrees
    assert set(manifest["indexes"].values()) == {
        "left out: a server rebuilds it from the database at first use"
    }


def test_the_restored_directory_passes_verify(scenario: Scenario) -> None:
    run = scenario.verify_run
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == {
        "path": str(scenario.tmp / "restored"), "ok": True, "errors": [],
    }  # fmt: skip
    assert "no index file; a server builds the index from the database's" in _siftline_lines(run)


def test_verify_checks_a_data_directory_while_its_server_serves(scenario: Scenario) -> None:
    run = siftline("verify", str(scenario.tmp / "original"))
    assert run.returncode == 0, run.stderr
    assert "Data directory" in run.stderr and "OK" in run.stderr
    assert httpx.get(f"{scenario.original.url}/v1/health").status_code == 200


def test_the_restore_holds_every_write_acknowledged_before_the_backup(scenario: Scenario) -> None:
    with scenario.client(scenario.restored) as http:
        held = all_documents(http)
    t0, t1 = scenario.started, scenario.ended
    deleted_early = {w.ids[0] for w in scenario.writes if w.kind == "delete" and w.sent < t1}
    must = {
        d for w in scenario.writes if w.kind == "put" and w.acked is not None and w.acked < t0 for d in w.ids
    } - deleted_early
    gone = {w.ids[0] for w in scenario.writes if w.kind == "delete" and w.acked is not None and w.acked < t0}
    sent = {d for w in scenario.writes if w.kind == "put" and w.sent < t1 for d in w.ids}
    assert len(must) > 300
    assert not must - held.keys(), (
        f"acknowledged before the backup, missing: {sorted(must - held.keys())[:5]}"
    )
    assert not gone & held.keys(), f"deleted before the backup, present: {sorted(gone & held.keys())[:5]}"
    assert held.keys() <= sent, f"sent after the backup ended: {sorted(held.keys() - sent)[:5]}"
    for w in scenario.writes:  # one snapshot: a batch is all there or all missing
        if w.kind == "put" and not set(w.ids) & deleted_early:
            assert len(set(w.ids) & held.keys()) in (0, len(w.ids)), w
    for doc_id, doc in held.items():
        assert doc["text"] == body_text(doc_id)
        got = np.asarray(doc["vectors"]["all_minilm_l6_v2"])
        want = vector(doc_id) / np.linalg.norm(vector(doc_id))
        assert np.allclose(got / np.linalg.norm(got), want, atol=1e-5), doc_id


def _acked_before(scenario: Scenario) -> list[str]:
    deleted = {w.ids[0] for w in scenario.writes if w.kind == "delete"}
    return sorted(
        {
            d
            for w in scenario.writes
            if w.kind == "put" and w.acked and w.acked < scenario.started
            for d in w.ids
        }
        - deleted
    )


def test_dense_searches_over_the_documents_acknowledged_before_agree_on_both_servers(
    scenario: Scenario,
) -> None:
    only = _acked_before(scenario)
    with scenario.client(scenario.original) as a, scenario.client(scenario.restored) as b:
        for i in range(8):
            body = search_body(DENSE, vector(f"query-{i}"), only)
            there, here = hits(a, body), hits(b, body)
            assert len(here) == TOP_K
            assert [d for d, _ in here] == [d for d, _ in there]
            assert [s for _, s in here] == pytest.approx([s for _, s in there], abs=1e-6)


def _bm25_reference(held: dict[str, dict[str, Any]], query: str) -> list[tuple[str, float]]:
    """Okapi BM25 with Lucene's idf (k1 1.2, b 0.75) over ``held``, terms as Siftline analyses them."""
    docs = {d: Counter(text.stems(text.words(doc["text"]))) for d, doc in held.items()}
    n = len(docs)
    avgdl = sum(sum(c.values()) for c in docs.values()) / n
    terms = text.query_terms(query)
    df = {t: sum(1 for c in docs.values() if t in c) for t in terms}
    scores = {}
    for d, c in docs.items():
        length = sum(c.values())
        s = 0.0
        for t in terms:
            if c[t]:
                idf = np.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                s += idf * c[t] * 2.2 / (c[t] + 1.2 * (1 - 0.75 + 0.75 * length / avgdl))
        if s > 0:
            scores[d] = s
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def _same_ranking(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    """Same scores rank by rank; each id one of the reference's ids of that score (ties may order apart)."""
    assert [s for _, s in got] == pytest.approx([s for _, s in want[: len(got)]], rel=1e-4, abs=1e-4)
    assert len(got) == min(TOP_K, len(want))
    for doc_id, score in got:
        assert doc_id in {d for d, s in want if abs(s - score) <= 1e-4 * max(1.0, score)}, (doc_id, score)


def test_searches_of_the_restored_server_match_a_reference_over_its_documents(scenario: Scenario) -> None:
    with scenario.client(scenario.restored) as http:
        held = all_documents(http)
        ids = sorted(held)
        matrix = np.stack([vector(d) / np.linalg.norm(vector(d)) for d in ids])
        for i in range(5):
            query = vector(f"query-{i}")
            scores = matrix @ (query / np.linalg.norm(query))
            want = [(ids[j], float(scores[j])) for j in np.argsort(-scores)[:TOP_K]]
            got = hits(http, search_body(DENSE, query))
            assert [d for d, _ in got] == [d for d, _ in want]
            assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)
        some = sorted(held)[:: max(1, len(held) // 5)][:5]
        for query in [
            "river stone",
            "copper falcon orchid",
            *(f"meadow tag{d.replace('-', 'x')}" for d in some),
        ]:
            _same_ranking(hits(http, search_body(BM25, query)), _bm25_reference(held, query))


def _siftline_lines(run: Any) -> str:
    return " ".join((run.stdout + run.stderr).split())


def test_verify_names_a_damaged_backup_and_restore_refuses_it(scenario: Scenario, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(scenario.backup, broken)
    db = broken / "siftline.db"
    with db.open("r+b") as fh:
        fh.seek(db.stat().st_size // 2)
        fh.write(b"\xa5" * 64)
    run = siftline("verify", str(broken))
    assert run.returncode == 1
    assert "siftline.db: its SHA-256 differs from the manifest's" in _siftline_lines(run)

    refused = siftline("restore", str(broken), "--data-dir", str(tmp_path / "target"))
    assert refused.returncode == 1
    assert "fails verification, so it is not restored" in _siftline_lines(refused)
    assert not (tmp_path / "target" / "siftline.db").exists()

    # a damaged B-tree page, no manifest to compare with: SQLite's integrity check names it
    (broken / "manifest.json").unlink()
    shutil.copyfile(scenario.backup / "siftline.db", db)
    with db.open("r+b") as fh:
        fh.seek(4096 * 2)
        fh.write(b"\x00" * 4096)
    run = siftline("verify", str(broken))
    assert run.returncode == 1
    assert "siftline.db: SQLite's integrity check failed" in _siftline_lines(run)


def test_verify_counts_against_the_manifest(scenario: Scenario, tmp_path: Path) -> None:
    """A vector row gone, with the checksum made to match: the census against the manifest finds it."""
    edited = tmp_path / "edited"
    shutil.copytree(scenario.backup, edited)
    db = edited / "siftline.db"
    conn = sqlite3.connect(db)
    seq = conn.execute("SELECT seq FROM features WHERE name = 'all_minilm_l6_v2'").fetchone()[0]
    conn.execute(f"DELETE FROM vec_{seq} WHERE rowid = (SELECT max(rowid) FROM vec_{seq})")
    conn.commit()
    conn.close()
    manifest = json.loads((edited / "manifest.json").read_text())
    entry = manifest["files"][0]
    entry["bytes"] = db.stat().st_size
    import hashlib

    entry["sha256"] = hashlib.sha256(db.read_bytes()).hexdigest()
    (edited / "manifest.json").write_text(json.dumps(manifest))
    expected = next(
        f["vectors"]
        for f in manifest["census"]["collections"][0]["features"]
        if f["name"] == "all_minilm_l6_v2"
    )
    run = siftline("verify", str(edited))
    assert run.returncode == 1
    assert (
        f"feature all_minilm_l6_v2: {expected - 1} vectors, the manifest says {expected}"
        in _siftline_lines(run)
    )


def test_restore_refuses_a_directory_that_is_not_empty_without_force(
    scenario: Scenario, tmp_path: Path
) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    refused = siftline("restore", str(scenario.backup), "--data-dir", str(target))
    assert refused.returncode == 1
    assert "is not empty (notes.txt)" in _siftline_lines(refused) and "--force" in _siftline_lines(refused)
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]

    forced = siftline("restore", str(scenario.backup), "--data-dir", str(target), "--force")
    assert forced.returncode == 0, forced.stderr
    assert (target / "siftline.db").is_file() and (target / "notes.txt").read_text() == "mine"

    # never over a data directory a server has open, even forced
    live = siftline("restore", str(scenario.backup), "--data-dir", str(scenario.tmp / "original"), "--force")
    assert live.returncode == 1
    assert "A process (a Siftline server or command) has" in _siftline_lines(live)
    assert "open: stop it before restoring" in _siftline_lines(live)
    assert httpx.get(f"{scenario.original.url}/v1/health").status_code == 200


def test_backup_and_restore_on_postgres_point_to_the_postgres_tools(tmp_path: Path) -> None:
    env = {"SIFTLINE_STORAGE": "postgres", "SIFTLINE_POSTGRES_URL": "postgresql://nobody@127.0.0.1:9/none"}
    for args in (["backup", str(tmp_path / "b")], ["restore", str(tmp_path / "b")]):
        run = siftline(*args, env=env)
        assert run.returncode == 2
        said = _siftline_lines(run)
        assert "pg_dump" in said and "pg_basebackup" in said and "docs/POSTGRES.md" in said
    assert not (tmp_path / "b").exists()
