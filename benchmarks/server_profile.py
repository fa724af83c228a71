"""py-spy recordings of a running server, and their summaries (used by ``benchmarks/load.py --profile``).

``start(pid, path, …)`` starts ``py-spy record --pid <pid>`` (``.venv/bin/py-spy``, else on PATH) in
speedscope format (raw collapsed stacks when ``path`` ends in ``.txt``; ``nonblocking``: without pausing
the process at each sample, which costs a server with dozens of threads much of its speed), optionally
with a second
recording of the GIL holder only (``--gil --nonblocking``, ``path`` + ``.gil.txt``) and a third of
every thread, idle ones too (``--idle --nonblocking``, ``path`` + ``.idle.txt``); ``stop`` ends them
with SIGINT (py-spy then writes its file). ``summarize`` reads a file back: samples, samples per
sampling tick (for the GIL recording: the share of ticks the GIL was held), the top frames by own and
by cumulative samples, own samples per module (the directory of the frame's file: a frame of
``siftline/storage/sqlite`` that calls into SQLite counts SQLite's time as its own) and, for a
speedscope file, samples per thread name (``MainThread`` is uvicorn's event loop). py-spy needs to be
allowed to ptrace the process (root, or kernel.yama.ptrace_scope 0).

    python benchmarks/server_profile.py /tmp/load.speedscope [--top 15]     # summarise a recording
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Stacks = collections.Counter[tuple[str, ...]]


class ProfileError(RuntimeError):
    """py-spy is missing, could not attach, or wrote nothing."""


@dataclass
class Recording:
    name: str
    path: Path
    proc: subprocess.Popen[bytes]
    log: Path
    cpu_s: float = 0.0  # py-spy's own CPU, read just before it stops


def binary() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(
    pid: int, path: Path, rate: int = 100, gil: bool = False, idle: bool = False, nonblocking: bool = False
) -> list[Recording]:
    spy = binary()
    if spy is None:
        raise ProfileError("py-spy is not installed (pip install py-spy)")
    fmt = "raw" if path.suffix == ".txt" else "speedscope"
    plans = [("active threads", path, ["--format", fmt, *(["--nonblocking"] if nonblocking else [])])]
    if gil:
        plans.append(("GIL holder", Path(f"{path}.gil.txt"), ["--format", "raw", "--gil", "--nonblocking"]))
    if idle:
        plans.append(
            ("every thread", Path(f"{path}.idle.txt"), ["--format", "raw", "--idle", "--nonblocking"])
        )
    out = []
    for name, target, extra in plans:
        target.unlink(missing_ok=True)
        log = Path(f"{target}.log")
        cmd = [spy, "record", "--pid", str(pid), "--rate", str(rate), "-o", str(target), *extra]
        with log.open("wb") as fh:
            out.append(
                Recording(name, target, subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT), log)
            )
    time.sleep(1.0)  # attach
    for r in out:
        if r.proc.poll() is not None:
            stop(out)
            raise ProfileError(f"py-spy ({r.name}) exited: {r.log.read_text()[-500:]}")
    return out


def stop(recordings: list[Recording]) -> list[str]:
    """SIGINT to each recording (py-spy writes its file); the failures, if any."""
    failures = []
    for r in recordings:
        r.cpu_s = process_cpu_s(r.proc.pid)
        if r.proc.poll() is None:
            r.proc.send_signal(signal.SIGINT)
    for r in recordings:
        try:
            r.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            r.proc.kill()
            r.proc.wait()
        if not r.path.exists():
            failures.append(f"py-spy ({r.name}) wrote nothing: {r.log.read_text()[-500:]}")
    return failures


def short_file(file: str) -> str:
    """``…/site-packages/numpy/x.py`` -> ``numpy/x.py``, ``…/src/siftline/a.py`` -> ``siftline/a.py``,
    ``…/lib/python3.11/threading.py`` -> ``threading.py`` (as py-spy's raw format shortens them)."""
    for mark in ("site-packages/", "/src/", "/lib/python3"):
        if mark in file:
            rest = file.split(mark, 1)[1]
            return rest.split("/", 1)[1] if mark == "/lib/python3" else rest
    return os.path.basename(file)


def read_stacks(path: Path) -> Stacks:
    """Samples per stack (outermost frame first) of a py-spy speedscope or raw (collapsed) file."""
    stacks: Stacks = collections.Counter()
    if path.suffix == ".txt":
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack:
                stacks[tuple(stack.split(";"))] += int(count)
        return stacks
    data = json.loads(path.read_text())
    frames = [f"{f['name']} ({short_file(f['file'])}:{f['line']})" for f in data["shared"]["frames"]]
    for profile in data["profiles"]:
        stacks.update(tuple(frames[i] for i in sample) for sample in profile["samples"])
    return stacks


def thread_samples(path: Path) -> dict[str, tuple[int, int]]:
    """Per thread name (a speedscope file names each thread): (threads, samples); empty for raw files."""
    if path.suffix == ".txt":
        return {}
    out: dict[str, tuple[int, int]] = {}
    for profile in json.loads(path.read_text())["profiles"]:
        name = profile["name"].split('"')[1] if '"' in profile["name"] else profile["name"]
        threads, samples = out.get(name, (0, 0))
        out[name] = (threads + 1, samples + len(profile["samples"]))
    return out


def module_of(frame: str) -> str:
    """The directory of a frame's file (``siftline/storage/sqlite``, ``numpy``) or the file (``threading.py``)."""
    where = frame.rsplit("(", 1)[-1].split(":", 1)[0]
    if where.startswith("siftline/"):
        return where.rsplit("/", 1)[0]
    return where.split("/", 1)[0]


def summarize(
    path: Path, rate: int | None = None, seconds: float | None = None, top: int = 15
) -> dict[str, Any]:
    stacks = read_stacks(path)
    total = sum(stacks.values())
    own: collections.Counter[str] = collections.Counter()
    cumulative: collections.Counter[str] = collections.Counter()
    modules: collections.Counter[str] = collections.Counter()
    for stack, n in stacks.items():
        if not stack:  # a sample py-spy took between frames
            continue
        own[stack[-1]] += n
        modules[module_of(stack[-1])] += n
        for frame in set(stack):
            cumulative[frame] += n

    def ranked(counter: collections.Counter[str], k: int) -> list[dict[str, Any]]:
        return [
            {"frame": f, "samples": n, "pct": round(100 * n / max(1, total), 1)}
            for f, n in counter.most_common(k)
        ]

    out = {
        "file": str(path),
        "samples": total,
        "own": ranked(own, top),
        "cumulative": ranked(cumulative, top),
    }
    out["modules"] = ranked(modules, 10)
    ticks = rate * seconds if rate and seconds else None
    if ticks:
        out["per_tick"] = round(total / ticks, 3)
    out["threads"] = [
        {"name": name, "threads": n, "samples": k, "pct": round(100 * k / max(1, total), 1)}
        | ({"per_tick": round(k / ticks, 3)} if ticks else {})
        for name, (n, k) in sorted(thread_samples(path).items(), key=lambda item: -item[1][1])
    ]
    return out


def render(summary: dict[str, Any], title: str) -> str:
    per_tick = summary.get("per_tick")
    head = f"py-spy, {title} (`{summary['file']}`): {summary['samples']:,} samples"
    if per_tick is not None:
        head += f", {per_tick:.2f} per sampling tick"
    if summary.get("pyspy_cpu_s") is not None:
        head += f"; py-spy's own CPU {summary['pyspy_cpu_s']:.1f} s"
    if summary.get("fell_behind"):
        head += f"; py-spy fell behind its rate {summary['fell_behind']} times (a lower --profile-rate samples evenly)"
    lines = [head, "", "| # | by own samples | % | by cumulative samples | % |", "|---|---|---|---|---|"]
    for i, (a, b) in enumerate(zip(summary["own"], summary["cumulative"], strict=False), 1):
        lines.append(f"| {i} | `{a['frame']}` | {a['pct']} | `{b['frame']}` | {b['pct']} |")
    modules = ", ".join(f"{m['frame']} {m['pct']} %" for m in summary["modules"])
    lines += ["", f"Own samples by module: {modules}."]
    if summary.get("threads"):
        threads = ", ".join(
            f"{t['name']} ({t['threads']}) {t['pct']} %"
            + (f" = {t['per_tick']:.2f}/tick" if "per_tick" in t else "")
            for t in summary["threads"]
        )
        lines.append(f"Samples by thread (threads of that name): {threads}.")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("file", type=Path, help="a py-spy speedscope (.json/.speedscope) or raw (.txt) file")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    print(render(summarize(args.file, top=args.top), args.file.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
