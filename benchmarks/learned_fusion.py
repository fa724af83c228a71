"""Offline learning harness for learned fusion: simulated users click on real executions over HTTP.

A real server (``python -m siftline serve``) on 127.0.0.1 loads SciFact into the collection
``scifact-lf`` (``--scifact``: title + text → MiniLM int8 dense and FTS5 BM25, as ``benchmarks/quality.py``
loads it) with, per document, a 16-d user vector ``noise`` of seeded random numbers: a leg that carries
no signal (its query vector is random too, passed as the input ``noise``). The judged training claims
are split (seeded) into a learning half and an evaluation half, per seed.

Saved retrievers, one ``feature_search`` each, every search top_k 100, final_top_k 100, RRF k = 60:
RRF of dense + BM25; ``weighted`` fusion (min-max scores) with weight w on dense and 1 - w on BM25 for w
in 0.1 … 0.9; RRF with the same weights (weighted RRF, unless ``--no-rrf-grid``); RRF of dense + BM25 +
noise; and per seed, fresh (new names, so the posteriors start from the prior): ``fusion: "learned"``
over dense + BM25 and over dense + BM25 + noise, ``learning_config {"context_features": []}`` (every
other field the default): one global posterior per leg, because the simulated users share one notion of
relevance and carry no user feature a personal or segment context could use.

Per seed, ``--sessions`` sessions: a learning claim drawn at random, each learned retriever executed
(``limit`` 10), a simulated user (``benchmarks/clicks.py``: ``--click-model`` cascade | pbm, ``--noise``
perfect | navigational | informational) clicks, each click sent as ``POST /v1/retrievers/interactions``
(execution_id, feature_id, position, ``["click"]``). Learning happens only through that API. At the
checkpoints (``--curve``, fractions of the sessions) learning is frozen (no interaction is sent while
the evaluation half is scored with the evaluations API: a dataset of the half's judged claims, ``POST
/v1/retrievers/{id}/evaluations``, polled). A learned retriever draws its weights per execution
(Thompson sampling), so its evaluation measures the posterior as users would meet it, draws included.

The fixed retrievers are deterministic: each is evaluated once over all the judged claims (evaluations
API, per-query nDCG@10), the weight of the best weighted fusion is chosen per seed on the learning half
from those per-query figures, and RRF, the chosen weighted fusion and RRF of three legs are evaluated
again on each seed's evaluation-half dataset (the two must agree: a consistency check).

Reports nDCG@10 on the evaluation half (mean, sd, min, max over seeds), the learning curves (nDCG@10
against interactions sent), the nDCG@10 the simulated users saw while it learned (beside what RRF of the
same legs would have shown in the same sessions), the posteriors (``GET /v1/retrievers/{id}/learned-fusion``:
their means, and the clicks they counted against those sent) and the sampled weights, and the checks of
issue 11 on the means over the seeds: (3) learned fusion of dense + BM25 within 0.005 below the better
(per seed) of RRF and the best weighted fusion; (4) RRF of the three legs ≥ 0.03 below RRF of the two
good legs, and learned fusion of the three legs at most 0.01 below that RRF. Written to
docs/BENCHMARKS.md (section ``learned-fusion-<model>-<noise>``) unless ``--no-write``; exits 1 when a
step failed or, unless ``--ignore-targets``, a check is not met.

    python benchmarks/learned_fusion.py                      # navigational cascade, 2000 sessions, 5 seeds
    python benchmarks/learned_fusion.py --data-dir /tmp/lf   # keep (and later reuse) the loaded server data
    python benchmarks/learned_fusion.py --click-model pbm --noise informational --seeds 5
    python benchmarks/learned_fusion.py --sessions 30 --seeds 1 --claims-limit 40 --scifact-docs 300 \\
        --no-write --ignore-targets                          # a smoke run, ~40 s
"""

from __future__ import annotations

import argparse
import collections
import random
import shlex
import statistics
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

import clicks
from beir import Doc, load_corpus, load_qrels, load_queries, ndcg_at_k
from quality import BM25_URI, DENSE_URI, ensure_loaded
from report import write_section
from scale import StepFailed, checked, drain_stderr, progress
from siftline.testing.server import start_with_key

ROOT = Path(__file__).resolve().parents[1]
COLLECTION = "scifact-lf"
NOISE_NAME, NOISE_DIM, NOISE_SEED = "noise", 16, 20261
NOISE_URI = f"mixpeek://vectors@v1/{NOISE_NAME}"
TOP_K, LIMIT, RRF_K = 100, 10, 60  # each search and the fused list; results shown (and nDCG@10's cut)
GRID = tuple(round(0.1 * i, 1) for i in range(1, 10))  # weight of the dense leg (BM25: 1 - w)
LEARNING_CONFIG: dict[str, Any] = {"context_features": []}  # global learning; all else the defaults
CURVE = (0.0, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)  # evaluation checkpoints, fractions of the sessions
USERS = 200  # simulated user ids (sent as user_id; no context reads them)
GAP_3, LOSS_4, RECOVERY_4 = 0.005, 0.03, 0.01
LEARNERS = {"learned2": ("dense", "bm25"), "learned3": ("dense", "bm25", "noise")}
URIS = {"dense": DENSE_URI, "bm25": BM25_URI, "noise": NOISE_URI}
Scores = dict[str, float]  # query id → nDCG@10; "" → the evaluation's overall nDCG@10


@dataclass(frozen=True)
class Claim:
    qid: str
    text: str
    judged: dict[str, int]
    noise: list[float]

    @property
    def inputs(self) -> dict[str, Any]:
        return {"query": self.text, "noise": self.noise}


def noise_vector(kind: int, ident: str) -> list[float]:
    """Seeded standard normal numbers, a function of the id alone (a reload or rerun gives the same)."""
    rng = np.random.default_rng([NOISE_SEED, kind, zlib.crc32(ident.encode())])
    return [round(float(x), 6) for x in rng.standard_normal(NOISE_DIM)]


def search(leg: str) -> dict[str, Any]:
    query: Any = {"input_mode": "vector", "value": "{{INPUT.noise}}"} if leg == "noise" else "{{INPUT.query}}"
    return {"feature_uri": URIS[leg], "query": query, "top_k": TOP_K}


def retriever(
    name: str, legs: tuple[str, ...], fusion: str, dense_weight: float | None = None
) -> dict[str, Any]:
    searches = [search(leg) for leg in legs]
    if dense_weight is not None:
        searches[0]["weight"], searches[1]["weight"] = dense_weight, round(1 - dense_weight, 6)
    params: dict[str, Any] = {"searches": searches, "fusion": fusion, "final_top_k": TOP_K, "rrf_k": RRF_K}
    if fusion == "learned":
        params["learning_config"] = LEARNING_CONFIG
    schema: dict[str, Any] = {"query": {"type": "text", "required": True}}
    schema["noise"] = {"type": "array", "required": "noise" in legs}
    stage = {"stage_name": "search", "config": {"stage_id": "feature_search", "parameters": params}}
    return {
        "retriever_name": f"{name}-{time.time_ns()}",  # unique: a reused data directory keeps older ones
        "collection_identifiers": [COLLECTION],
        "input_schema": schema,
        "stages": [stage],
    }


class Api:
    """The few calls the harness makes, on one keep-alive httpx client."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def post(self, path: str, body: Any) -> Any:
        headers = {"Content-Type": "application/json"}
        return checked(self.http.post(path, content=orjson.dumps(body), headers=headers)).json()

    def create(self, body: dict[str, Any]) -> str:
        return str(self.post("/v1/retrievers", body)["retriever_id"])

    def dataset(self, label: str, claims: list[Claim]) -> str:
        name = f"lf-{label}-{time.time_ns()}"
        queries = [
            {"query_id": c.qid, "query_input": c.inputs, "relevant_documents": sorted(c.judged),
             "relevance_scores": c.judged}
            for c in claims
        ]  # fmt: skip
        self.post("/v1/retrievers/evaluations/datasets", {"dataset_name": name, "queries": queries})
        return name

    def evaluate(self, runs: dict[str, str], dataset: str, size: int, label: str) -> dict[str, Scores]:
        """Each retriever (key → id) over the dataset (the server runs them one at a time): key →
        {query id: nDCG@10, "": the evaluation's overall nDCG@10}."""
        config = {"k_values": [LIMIT], "metrics": ["ndcg"]}
        started = {
            key: self.post(
                f"/v1/retrievers/{rid}/evaluations", {"dataset_name": dataset, "evaluation_config": config}
            )["evaluation_id"]
            for key, rid in runs.items()
        }
        out: dict[str, Scores] = {}
        with progress(f"{label}: {len(runs)} evaluation(s) x {size:,} claims", len(runs) * size) as advance:
            for key, eid in started.items():
                done = 0
                while True:
                    run = checked(self.http.get(f"/v1/retrievers/{runs[key]}/evaluations/{eid}")).json()
                    now = int((run.get("progress") or {}).get("done", 0))
                    advance(now - done)
                    done = now
                    if run["status"] in ("completed", "failed"):
                        break
                    time.sleep(0.25)
                if run["status"] != "completed" or run.get("skipped_queries"):
                    errors = [q.get("error") for q in run.get("query_results") or [] if q.get("error")]
                    problem = f"{run['status']}, {run.get('error_message')}, {errors[:3]}"
                    raise StepFailed(f"evaluation of {key}: {problem}")
                per_query = {q["query_id"]: q["metrics"][str(LIMIT)]["ndcg"] for q in run["query_results"]}
                out[key] = per_query | {"": run["overall_metrics"][f"ndcg@{LIMIT}"]}
        return out

    def execute(self, rid: str, claim: Claim, user: str) -> dict[str, Any]:
        body = {"inputs": claim.inputs | {"user_id": user}, "limit": LIMIT}
        data: dict[str, Any] = self.post(f"/v1/retrievers/{rid}/execute", body)
        if data.get("status") != "completed" or data.get("error"):
            raise StepFailed(f"execution of {rid} not completed: {data.get('error')}")
        return data

    def click(self, data: dict[str, Any], position: int, user: str, session: str) -> None:
        document = data["documents"][position]["document_id"]
        body = {"execution_id": data["execution_id"], "feature_id": document, "position": position,
                "interaction_type": ["click"], "user_id": user, "session_id": session}  # fmt: skip
        if self.post("/v1/retrievers/interactions", body).get("deduplicated"):
            raise StepFailed(f"a simulated click was dropped as a duplicate: {body}")


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def subset(per_query: Scores, claims: list[Claim]) -> float:
    return mean([per_query[c.qid] for c in claims])


# -- one seed -------------------------------------------------------------------------------------


@dataclass
class Learner:
    """A fresh learned-fusion retriever of one seed, and what its simulated users did with it."""

    key: str
    legs: tuple[str, ...]
    rid: str
    rng: np.random.Generator  # its users' clicks
    sent: int = 0
    seen: list[float] = field(default_factory=list)  # nDCG@10 of each page shown
    levels: collections.Counter[str] = field(default_factory=collections.Counter)
    late: list[dict[str, float]] = field(default_factory=list)  # sampled weights, last 10 % of sessions

    def session(
        self, api: Api, claim: Claim, user: str, name: str, late: bool, args: argparse.Namespace
    ) -> None:
        data = api.execute(self.rid, claim, user)
        ranked = [d["document_id"] for d in data["documents"]]
        self.seen.append(ndcg_at_k(ranked, claim.judged, LIMIT))
        context = data.get("learned_fusion_context") or {}
        self.levels[f"{context.get('context_level')} ({context.get('served')})"] += 1
        if late:
            self.late.append(context.get("sampled_weights") or {})
        relevant = [claim.judged.get(d, 0) > 0 for d in ranked]
        for position in clicks.simulate(args.click_model, clicks.NOISE[args.noise], relevant, self.rng):
            api.click(data, position, user, name)
            self.sent += 1

    def summary(self, api: Api) -> dict[str, Any]:
        stages = checked(api.http.get(f"/v1/retrievers/{self.rid}/learned-fusion")).json()["stages"]
        glob = (stages.get("search", {}).get("global") or {}).get("global") or {}
        return {
            "seen": mean(self.seen),
            "seen_last_quarter": mean(self.seen[len(self.seen) * 3 // 4 :]),
            "interactions": self.sent,
            "context_levels": dict(self.levels),
            "sampled_weights_last_10pct": {
                URIS[leg]: mean([w.get(URIS[leg], 0.0) for w in self.late]) for leg in self.legs
            },
            "posteriors": glob.get("legs", {}),
            "counted": max((leg["interactions"] for leg in glob.get("legs", {}).values()), default=0),
        }


def baselines(
    api: Api, seed: int, learn: list[Claim], held: list[Claim], fixed: dict[str, str], full: dict[str, Scores]
) -> tuple[dict[str, Any], str]:
    """The weights chosen on the learning half (from the per-query figures over all claims) and the fixed
    retrievers scored on the evaluation half; returns the figures and the evaluation half's dataset."""
    families = [fam for fam in ("w", "wrrf") if f"{fam}{GRID[0]}" in full]
    pick = {fam: max(GRID, key=lambda w, f=fam: subset(full[f"{f}{w}"], learn)) for fam in families}
    dataset = api.dataset(f"eval-s{seed}", held)
    sources = {"rrf2": "rrf2", "weighted": f"w{pick['w']}", "rrf3": "rrf3"}
    chosen = {key: fixed[source] for key, source in sources.items() if source in fixed}
    scored = api.evaluate(chosen, dataset, len(held), f"seed {seed}: fixed baselines, evaluation half")
    fig: dict[str, Any] = {"weighted_w": pick["w"], "weighted_rrf_w": pick.get("wrrf")}
    fig["eval"] = {k: v[""] for k, v in scored.items()}
    fig["eval"]["weighted_rrf"] = subset(full[f"wrrf{pick['wrrf']}"], held) if "wrrf" in pick else None
    fig["learn_half"] = {
        "weighted": subset(full[f"w{pick['w']}"], learn),
        "rrf2": subset(full["rrf2"], learn),
    }
    fig["consistency"] = max(abs(v[""] - subset(full[sources[k]], held)) for k, v in scored.items())
    return fig, dataset


def run_seed(
    api: Api, seed: int, claims: list[Claim], fixed: dict[str, str], full: dict[str, Scores],
    args: argparse.Namespace,
) -> dict[str, Any]:  # fmt: skip
    order = sorted(claims, key=lambda c: c.qid)
    random.Random(f"split-{seed}").shuffle(order)
    learn, held = order[: len(order) // 2], order[len(order) // 2 :]
    fig, dataset = baselines(api, seed, learn, held, fixed, full)
    fig |= {"seed": seed, "learning_claims": len(learn), "evaluation_claims": len(held)}
    learners = [
        Learner(key, legs, api.create(retriever(f"lf-{key}-s{seed}", legs, "learned")),
                np.random.default_rng([seed, 2, len(legs)]))
        for key, legs in LEARNERS.items()
        if args.noise_leg or key == "learned2"
    ]  # fmt: skip
    rids = {learner.key: learner.rid for learner in learners}
    rng = np.random.default_rng([seed, 1])  # the sessions' claims and users, the same for every learner
    curve: list[dict[str, Any]] = []
    asked: list[Claim] = []  # the sessions' claims
    done = 0
    for checkpoint in sorted({round(f * args.sessions) for f in args.curve} | {args.sessions}):
        if checkpoint > done:
            label = f"seed {seed}: sessions {done + 1:,}-{checkpoint:,} (clicks sent as interactions)"
            with progress(label, checkpoint - done) as advance:
                for session in range(done, checkpoint):
                    claim, user = learn[int(rng.integers(len(learn)))], f"user-{int(rng.integers(USERS))}"
                    asked.append(claim)
                    late = session >= args.sessions * 0.9
                    for learner in learners:
                        learner.session(api, claim, user, f"s{seed}-{session}", late, args)
                    advance(1)
            done = checkpoint
        label = f"seed {seed}: learned, frozen after {done:,} sessions"
        scored = api.evaluate(rids, dataset, len(held), label)
        sent = {learner.key: learner.sent for learner in learners}
        curve.append({"sessions": done, "interactions": sent} | {k: v[""] for k, v in scored.items()})
    fig["curve"] = curve
    fig["eval"] |= {learner.key: curve[-1][learner.key] for learner in learners}
    fig["learners"] = {learner.key: learner.summary(api) for learner in learners}
    # what the same sessions would have shown under the fixed RRF retrievers (their per-query figures)
    fig["seen_fixed"] = {k: mean([full[k][c.qid] for c in asked]) for k in ("rrf2", "rrf3") if k in full}
    return fig


# -- the report -----------------------------------------------------------------------------------

ROWS = {
    "rrf2": "RRF, dense + BM25",
    "weighted": "weighted fusion (min-max), dense weight chosen on the learning half",
    "weighted_rrf": "weighted RRF, dense weight chosen on the learning half",
    "learned2": "**learned fusion, dense + BM25** (frozen after all sessions)",
    "rrf3": "RRF, dense + BM25 + noise",
    "learned3": "**learned fusion, dense + BM25 + noise** (frozen after all sessions)",
}


def cell(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean(values):.4f} ± {sd:.4f}"


def checks(seeds: list[dict[str, Any]], noise_leg: bool) -> list[tuple[str, bool]]:
    """The acceptance checks on the means over the seeds (the better baseline picked per seed)."""
    ev = {k: mean([s["eval"][k] for s in seeds]) for k in ("rrf2", "learned2", "rrf3", "learned3")
          if k in seeds[0]["eval"]}  # fmt: skip
    best = mean([max(s["eval"]["rrf2"], s["eval"]["weighted"]) for s in seeds])
    gap = ev["learned2"] - best
    out = [(f"(3) learned(dense + BM25) {ev['learned2']:.4f} vs max(RRF, best weighted) {best:.4f}: "
            f"{gap:+.4f} (target ≥ -{GAP_3})", gap >= -GAP_3)]  # fmt: skip
    return out + checks_4(ev) if noise_leg else out


def family_gap(seeds: list[dict[str, Any]]) -> str:
    """Check 3 against weighted RRF instead of min-max weighted fusion (for information)."""
    if any(s["eval"].get("weighted_rrf") is None for s in seeds):
        return ""
    best = mean([max(s["eval"]["rrf2"], s["eval"]["weighted_rrf"]) for s in seeds])
    gap = mean([s["eval"]["learned2"] for s in seeds]) - best
    return f"- for information, check 3 against max(RRF, best weighted RRF) {best:.4f}: {gap:+.4f}"


def checks_4(ev: dict[str, float]) -> list[tuple[str, bool]]:
    loss, recovered = ev["rrf3"] - ev["rrf2"], ev["learned3"] - ev["rrf2"]
    return [
        (f"(4a) RRF(3 legs) {ev['rrf3']:.4f} vs RRF(2 legs) {ev['rrf2']:.4f}: {loss:+.4f} "
         f"(target ≤ -{LOSS_4})", loss <= -LOSS_4),
        (f"(4b) learned(3 legs) {ev['learned3']:.4f} vs RRF(2 legs) {ev['rrf2']:.4f}: {recovered:+.4f} "
         f"(target ≥ -{RECOVERY_4})", recovered >= -RECOVERY_4),
    ]  # fmt: skip


def legs_cell(seeds: list[dict[str, Any]], key: str, figure: str) -> str:
    """A per-leg figure of a learner, mean over the seeds, as 'dense/bm25: 0.5 / 0.5'."""
    values = []
    for leg in LEARNERS[key]:
        per_seed = [s["learners"][key][figure].get(URIS[leg]) for s in seeds]
        values.append(mean([v["mean"] if isinstance(v, dict) else v for v in per_seed if v is not None]))
    return "/".join(LEARNERS[key]) + ": " + " / ".join(f"{v:.3f}" for v in values)


def render(fig: dict[str, Any]) -> str:
    seeds, a = fig["seeds"], fig["args"]
    first = seeds[0]
    lines = [
        f"{Path(a['scifact']).name} ({fig['documents']:,} abstracts), {fig['claims']} judged training claims "
        f"split per seed into {first['learning_claims']} learning and {first['evaluation_claims']} "
        f"evaluation claims; {a['sessions']:,} sessions per seed, {len(seeds)} seed(s) "
        f"({', '.join(str(s['seed']) for s in seeds)}); click model **{a['click_model']}**, noise "
        f"**{a['noise']}** (`benchmarks/clicks.py`). Every search top_k {TOP_K}, final_top_k {TOP_K}, "
        f"{LIMIT} results shown, RRF k = {RRF_K}. Learned fusion: `learning_config "
        f"{orjson.dumps(LEARNING_CONFIG).decode()}` (one global posterior per leg; the rest default). The "
        f"noise leg: a {NOISE_DIM}-d user vector of seeded random numbers per document and per claim.",
        "",
        f"nDCG@10 on the evaluation half, mean ± sd over {len(seeds)} seed(s), evaluations API (learned "
        "fusion draws its weights per execution: its figure is the posterior as users meet it):",
        "",
        "| retriever | nDCG@10 | min | max | per seed |",
        "|---|---|---|---|---|",
    ]
    for key, label in ROWS.items():
        values = [s["eval"].get(key) for s in seeds]
        if all(v is not None for v in values):
            each = " ".join(f"{v:.4f}" for v in values)
            lines.append(f"| {label} | {cell(values)} | {min(values):.4f} | {max(values):.4f} | {each} |")
    chosen = f"weighted {[s['weighted_w'] for s in seeds]}"
    if first["weighted_rrf_w"] is not None:
        chosen += f", weighted RRF {[s['weighted_rrf_w'] for s in seeds]}"
    lines += [
        "",
        f"Dense weights chosen on the learning half (BM25 gets 1 - w): {chosen}. The evaluations-API runs "
        "of the fixed retrievers on each evaluation half match the means of their per-query figures over "
        f"all claims to {max(s['consistency'] for s in seeds):.1e}.",
        "",
        "Learning curve: nDCG@10 on the evaluation half, learning frozen, against interactions sent "
        "(mean ± sd over the seeds):",
        "",
    ]
    keys = [k for k in LEARNERS if k in first["eval"]]
    lines.append("| sessions | " + " | ".join(f"{k}: interactions | {k}: nDCG@10" for k in keys) + " |")
    lines.append("|---|" + "---|---|" * len(keys))
    for i, point in enumerate(first["curve"]):
        row = [f"{point['sessions']:,}"]
        for k in keys:
            row.append(f"{mean([s['curve'][i]['interactions'][k] for s in seeds]):,.0f}")
            row.append(cell([s["curve"][i][k] for s in seeds]))
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "While it learned (the learning claims, as the simulated users were shown them; *static*: what RRF "
        "of the same legs would have shown in the same sessions):",
        "",
        "| learner | nDCG@10 users saw | static | in the last quarter | clicks per session "
        "| posterior mean per leg (end) | sampled weight per leg (last 10 %) |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in keys:
        seen = cell([s["learners"][k]["seen"] for s in seeds])
        static = cell([s["seen_fixed"][f"rrf{len(LEARNERS[k])}"] for s in seeds])
        late = cell([s["learners"][k]["seen_last_quarter"] for s in seeds])
        per_session = mean([s["learners"][k]["interactions"] for s in seeds]) / a["sessions"]
        legs = f"{legs_cell(seeds, k, 'posteriors')} | {legs_cell(seeds, k, 'sampled_weights_last_10pct')}"
        lines.append(f"| {k} | {seen} | {static} | {late} | {per_session:.2f} | {legs} |")
    sent = sum(s["learners"][k]["interactions"] for s in seeds for k in keys)
    counted = sum(s["learners"][k]["counted"] for s in seeds for k in keys)
    lines += ["", f"Clicks counted in the learners' global posteriors: {counted:,.0f} of the {sent:,} sent."]
    grid, ws = fig["grid"], " | ".join(str(w) for w in GRID)
    lines += [
        "",
        f"Fixed retrievers over all {fig['claims']} claims (evaluations API), by dense weight w:",
        "",
    ]
    lines += [f"| fusion | {ws} |", "|---|" + "---|" * len(GRID)]
    for fam, label in (("w", "weighted (min-max)"), ("wrrf", "weighted RRF")):
        if f"{fam}{GRID[0]}" in grid:
            lines.append(f"| {label} | " + " | ".join(f"{grid[f'{fam}{w}']:.4f}" for w in GRID) + " |")
    extra = ", ".join(f"{k} {grid[k]:.4f}" for k in ("rrf2", "rrf3") if k in grid)
    lines += ["", f"Over all claims: {extra}. Run time {fig['minutes']:.1f} min ({fig['phases']}).", ""]
    lines += [f"- check {text}: **{'met' if ok else 'NOT MET'}**" for text, ok in fig["checks"]]
    lines += [line for line in [family_gap(seeds)] if line]
    lines += [f"- **FAILED**: {f}" for f in fig["failures"]]
    return "\n".join(lines) + "\n"


# -- main -----------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--scifact", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    add("--scifact-docs", type=int, help="only the first N abstracts, plus the judged ones (a smoke run)")
    add("--claims-limit", type=int, help="only the first N judged training claims")
    add("--sessions", type=int, default=2000, help="simulated sessions per seed")
    add("--seeds", type=int, default=5, help="how many seeds (each: split, sessions, clicks)")
    add("--first-seed", type=int, default=1)
    add("--click-model", choices=clicks.MODELS, default="cascade")
    add("--noise", choices=tuple(clicks.NOISE), default="navigational")
    fractions = ",".join(f"{f:g}" for f in CURVE)
    add("--curve", type=lambda s: [float(x) for x in s.split(",")], default=list(CURVE),
        help=f"evaluation checkpoints, fractions of the sessions (default {fractions})")  # fmt: skip
    add("--no-noise-leg", dest="noise_leg", action="store_false", help="no third leg (skips check 4)")
    add("--no-rrf-grid", dest="rrf_grid", action="store_false", help="no weighted-RRF grid")
    add("--batch", type=int, default=256, help="abstracts per documents/batch")
    add("--data-dir", type=Path, help="server data directory to create or reuse (a full one is not reloaded)")
    add("--tmp-dir", type=Path, help="where the temporary data directory goes")
    add("--json", type=Path, help="also write every figure to this JSON file")
    add("--no-write", action="store_true", help="do not write docs/BENCHMARKS.md")
    add("--ignore-targets", action="store_true", help="exit 0 even when a check is not met")
    return parser.parse_args()


def corpus(args: argparse.Namespace) -> tuple[list[Doc], list[Claim]]:
    docs = load_corpus(args.scifact)
    qrels = load_qrels(args.scifact, "train")
    queries = [(q, t) for q, t in load_queries(args.scifact, "train") if q in qrels][: args.claims_limit]
    claims = [Claim(q, t, qrels[q], noise_vector(1, q)) for q, t in queries]
    if args.scifact_docs is not None:
        judged = {d for c in claims for d in c.judged}
        docs = [d for i, d in enumerate(docs) if i < args.scifact_docs or d.doc_id in judged]
    return docs, claims


def fixed_retrievers(api: Api, args: argparse.Namespace) -> dict[str, str]:
    two = ("dense", "bm25")
    fixed = {"rrf2": api.create(retriever("lf-rrf2", two, "rrf"))}
    for w in GRID:
        fixed[f"w{w}"] = api.create(retriever(f"lf-weighted-{w}", two, "weighted", w))
        if args.rrf_grid:
            fixed[f"wrrf{w}"] = api.create(retriever(f"lf-weighted-rrf-{w}", two, "rrf", w))
    if args.noise_leg:
        fixed["rrf3"] = api.create(retriever("lf-rrf3", (*two, "noise"), "rrf"))
    return fixed


def run(args: argparse.Namespace, data_dir: Path, fig: dict[str, Any]) -> None:
    docs, claims = corpus(args)
    fig |= {"documents": len(docs), "claims": len(claims)}
    phases: dict[str, float] = {}
    server, key = start_with_key(data_dir)
    stderr_tail = drain_stderr(server)
    http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=900)
    try:
        api = Api(http)
        t0 = time.perf_counter()
        noise = [{"name": NOISE_NAME, "dimension": NOISE_DIM, "metric": "cosine"}]
        loaded = ensure_loaded(http, docs, args.batch, collection=COLLECTION, vector_configs=noise,
                               vectors=lambda d: {NOISE_NAME: noise_vector(0, d.doc_id)})  # fmt: skip
        phases["load" if loaded else "load (collection reused)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        fixed = fixed_retrievers(api, args)
        full = api.evaluate(fixed, api.dataset("all", claims), len(claims), "fixed retrievers, all claims")
        fig["grid"] = {k: v[""] for k, v in full.items()}
        phases["fixed retrievers"] = time.perf_counter() - t0
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            t0 = time.perf_counter()
            fig["seeds"].append(run_seed(api, seed, claims, fixed, full, args))
            phases[f"seed {seed}"] = time.perf_counter() - t0
            done = ", ".join(f"{k} {v:.4f}" for k, v in fig["seeds"][-1]["eval"].items() if v is not None)
            print(f"seed {seed} (evaluation half, nDCG@10): {done}", file=sys.stderr, flush=True)
    except (StepFailed, httpx.HTTPError, OSError, KeyError) as exc:
        fig["failures"].append(repr(exc))
        if stderr_tail:
            print("server stderr (tail):\n" + "\n".join(stderr_tail), file=sys.stderr)
    finally:
        http.close()
        server.stop()
        fig["phases"] = ", ".join(f"{k} {v / 60:.1f} min" for k, v in phases.items())


def main() -> int:
    args = parse_args()
    started = time.perf_counter()
    command = shlex.join(["python", "benchmarks/learned_fusion.py", *sys.argv[1:]])
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    fig: dict[str, Any] = {"command": command, "args": settings, "seeds": [], "failures": [], "checks": []}
    with tempfile.TemporaryDirectory(dir=args.tmp_dir, prefix="siftline-learned-") as tmp:
        run(args, args.data_dir or Path(tmp) / "data", fig)
    fig["minutes"] = (time.perf_counter() - started) / 60
    title = f"Learned fusion, offline: SciFact, {args.click_model} clicks, {args.noise}"
    if fig["seeds"]:
        fig["checks"] = checks(fig["seeds"], args.noise_leg)
        text = render(fig)
        print(f"\n## {title}\n\n{text}")
        if not args.no_write and not fig["failures"]:
            write_section(f"learned-fusion-{args.click_model}-{args.noise}", title, command, text)
    for failure in fig["failures"]:
        print(f"FAILED: {failure}")
    if args.json:
        args.json.write_text(orjson.dumps(fig, option=orjson.OPT_INDENT_2).decode())
    missed = any(not ok for _, ok in fig["checks"]) and not args.ignore_targets
    return 1 if fig["failures"] or missed or not fig["seeds"] else 0


if __name__ == "__main__":
    sys.exit(main())
