"""Query-embedding latency of the built-in MiniLM int8 model: one sentence at a time.

python benchmarks/embed_latency.py [--runs 300]
"""

from __future__ import annotations

import argparse
import time

from rich.progress import track

from report import percentiles, write_section
from siftline.features.embedder import TextEmbedder

QUERIES = [
    "0-dimensional biomaterials show inductive properties.",
    "what is the effect of vitamin d on bone density",
    "a cat sat on the mat",
    "Antimicrobial agents are less effective due to the pressure of antimicrobial usage.",
    "ALDH1 expression is associated with poorer prognosis for breast cancer primary tumors.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args()
    embedder = TextEmbedder()
    started = time.perf_counter()
    embedder.warm_up()
    load_ms = (time.perf_counter() - started) * 1000
    samples = []
    for i in track(range(args.runs), description="embedding queries"):
        t0 = time.perf_counter()
        embedder.embed_one(QUERIES[i % len(QUERIES)])
        samples.append((time.perf_counter() - t0) * 1000)
    stats = percentiles(samples)
    table = (
        "| what | figure |\n|---|---|\n"
        f"| model load + first call | {load_ms:.0f} ms |\n"
        + "".join(f"| one-sentence query embedding {k} | {v:.2f} ms |\n" for k, v in stats.items())
        + f"| runs | {args.runs} |\n"
    )
    print(table)
    if not args.no_write:
        write_section(
            "embed-latency",
            "Query embedding latency (all-MiniLM-L6-v2 int8 ONNX)",
            f"python benchmarks/embed_latency.py --runs {args.runs}",
            "Target: well under 50 ms per one-sentence query.\n\n" + table,
        )


if __name__ == "__main__":
    main()
