"""The tables of ``benchmarks/bm25_engines.py`` (markdown, printed and written to docs/BENCHMARKS.md)."""

from __future__ import annotations

from typing import Any

LABELS = {
    "fts5": "SQLite FTS5 (porter unicode61, bm25())",
    "tantivy": "tantivy (en_stem, block-max WAND), index directory",
    "tantivy-ram": "tantivy, index in RAM",
    "siftline": "Siftline TextIndex (MaxScore)",
    "bm25s": "bm25s (numpy sparse)",
}


def _f(value: Any, spec: str = ".3f", none: str = "n/a") -> str:
    return none if value is None else format(value, spec)


def _pair(lat: dict[str, Any] | None) -> str:
    return f"{lat['p50']:.3f} / {lat['p95']:.3f}" if lat else "n/a"


def _agree(a: dict[str, Any] | None) -> str:
    return f"{a['overlap']:.3f} / {a['identical']:.3f}" if a else "n/a"


def scifact_table(sf: dict[str, Any]) -> str:
    lines = [
        f"SciFact: {sf['docs']:,} abstracts (title + text), {sf['queries']} judged train claims, the OR of "
        f"each claim's words, top 10. The exact reference scores nDCG@10 {sf['reference_ndcg_at_10']:.4f}.\n",
        "| engine | nDCG@10 | p50 / p95 ms | overlap@10 / identical vs exact | build s |",
        "|---|---|---|---|---|",
    ]
    for name, row in sf["engines"].items():
        lines.append(
            f"| {LABELS.get(name, name)} | {row['ndcg_at_10']:.4f} | {_pair(row['latency_ms'])} | "
            f"{_agree(row['agreement'])} | {row['build_s']:.2f} |"
        )
    return "\n".join(lines)


def synthetic_tables(syn: dict[str, Any]) -> str:
    n, rows = syn["docs"], syn["engines"]
    head = (
        f"Synthetic corpus (`benchmarks/synthetic.py`): {n:,} documents of 15-40 Zipf words; "
        f"{syn['queries']} queries of each kind after 20 warm-up: short = 2-4 mid-frequency words of a "
        "document, long = 15-20 words of a document, filtered = the short ones with `decile == 3` (10 %). "
        "Latency is one query at a time on one thread, query text in, top-10 document ids out.\n"
    )
    speed = [
        "| engine | build docs/s | RSS growth MB: peak / held | on disk MB | short p50 / p95 ms | long p50 / p95 ms "
        "| 10 % filter p50 / p95 ms | one write searchable: median / p95 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    agree = [
        "| engine | short: overlap@10 / identical | long | 10 % filter |",
        "|---|---|---|---|",
    ]
    notes = []
    for name, row in rows.items():
        b, lat, ag = row["build"], row["latency_ms"], row["agreement"]
        w = row.get("write_ms")
        write = (
            f"{w['p50']:.3f} / {w['p95']:.3f} ({w['visible']}/{w['n']} found at once)"
            if w
            else "n/a: no incremental add (rebuild)"
        )
        speed.append(
            f"| {LABELS.get(name, name)} | {b['docs_per_s']:,.0f} | {b['rss_peak_growth_mb']:,.0f} / "
            f"{b['rss_held_mb']:,.0f} | {_f(b['disk_mb'], ',.0f', '(memory)')} | {_pair(lat.get('short'))} "
            f"| {_pair(lat.get('long'))} | {_pair(lat.get('filtered'))} | {write} |"
        )
        agree.append(
            f"| {LABELS.get(name, name)} | {_agree(ag.get('short'))} | {_agree(ag.get('long'))} "
            f"| {_agree(ag.get('filtered'))} |"
        )
        stats = ", ".join(f"{k} {v:,}" for k, v in row.get("stats", {}).items())
        notes.append(f"- {name}: {row['note']}" + (f" ({stats})" if stats else ""))
    return (
        head
        + "\n"
        + "\n".join(speed)
        + "\n\nTop-10 agreement with the exact reference (Siftline's analysis and formula, brute force):\n\n"
        + "\n".join(agree)
        + "\n\n"
        + "\n".join(notes)
    )


def render(fig: dict[str, Any]) -> str:
    parts = [
        "Engines in one process (no HTTP), one query at a time, one thread. Reference: exact BM25 with "
        "Siftline's analysis (words, PyStemmer Porter) and Lucene-idf formula (k1 1.2, b 0.75), every "
        "posting scored with numpy, ties by document id; overlap@10 = shared ids / reference ids, identical "
        "= same ids in the same order. RSS growth: VmRSS during the build (peak, sampled every 0.25 s) and "
        "after it once garbage is collected and freed heap trimmed (held), minus VmRSS before it; each "
        "engine runs in its own process, forked from the one holding the corpus. A write: one document "
        "added and made searchable (FTS5: INSERT + COMMIT in WAL, synchronous NORMAL; tantivy: "
        "add_document + commit + reload; TextIndex: analysis + apply of a 1-document batch), then checked "
        "to be found by a word only it has."
    ]
    if fig.get("scifact"):
        parts.append(scifact_table(fig["scifact"]))
    parts.append(synthetic_tables(fig["synthetic"]))
    for name, why in fig.get("skipped", {}).items():
        parts.append(f"- {name}: skipped, {why}")
    for failure in fig.get("failures", []):
        parts.append(f"- FAILED: {failure}")
    parts.append(f"Whole run: {fig.get('seconds', 0):.0f} s.")
    return "\n\n".join(parts) + "\n"
