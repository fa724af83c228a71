"""`siftline eval upload` and `siftline eval run` on a tiny BEIR folder loaded with `siftline load`: the split's
judged queries become a dataset, two saved retrievers (BM25 only, dense only) are evaluated on it, the table
and the paired comparison are printed, and each run is stored as a completed evaluation.

Five queries share rare words with their relevant document alone, so BM25 ranks it first, and two share
no word with any document, so BM25 finds nothing (nDCG@10 = 5/7 overall); the dense figures come from the
real model and are checked against the stored records rather than by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from helpers import BM25, DENSE
from siftline.config import Settings
from siftline.service import evaluations, metrics, namespaces, retrievers
from siftline.service.container import Services
from siftline.testing.server import siftline

pytestmark = pytest.mark.slow

CORPUS = [
    ("volcano", "Volcanic eruptions", "Magma and basalt flows from the volcano crater reshaped the island."),
    (
        "glacier",
        "Glacier retreat",
        "Alpine glaciers lose ice mass as summers warm; moraines are left behind.",
    ),
    ("bees", "Honeybee colonies", "Honeybees pollinate orchards; hive collapse worries beekeepers."),
    ("chess", "Chess openings", "The Sicilian defence and the queen's gambit are popular chess openings."),
    ("bread", "Sourdough baking", "A sourdough starter ferments flour and water before the loaf is baked."),
    ("tides", "Ocean tides", "The moon's gravity pulls the oceans, producing high and low tides."),
    ("violin", "Violin making", "Luthiers carve spruce tops and maple backs for violins."),
    ("comet", "Comet tails", "A comet's tail of dust and ions points away from the sun."),
    ("coffee", "Coffee roasting", "Roasting green coffee beans develops aroma through Maillard reactions."),
    ("bridge", "Suspension bridges", "Steel cables hang from towers to carry the suspension bridge deck."),
]
QUERIES = {
    "q1": "basalt magma crater",
    "q2": "glaciers moraines ice",
    "q3": "honeybees hive beekeepers",
    "q4": "sicilian gambit chess",
    "q5": "sourdough starter loaf",
    "q6": "espresso",  # no word in common with its document: BM25 finds nothing
    "q7": "stringed instrument craftsmanship",  # idem
    "q8": "this query has no judgement",  # not in the qrels: left out of the dataset
}
QRELS = [
    ("q1", "volcano", 1),
    ("q2", "glacier", 2),
    ("q3", "bees", 1),
    ("q3", "coffee", 0),  # judged not relevant
    ("q4", "chess", 1),
    ("q5", "bread", 1),
    ("q6", "coffee", 1),
    ("q7", "violin", 1),
]
SCHEMA = {"query": {"type": "text", "required": True}}
WIDE = {"COLUMNS": "200"}  # the table and the comparison line on one line each, whatever the terminal


def beir_folder(root: Path) -> Path:
    folder = root / "tiny"
    folder.mkdir()
    rows = [{"_id": i, "title": t, "text": x} for i, t, x in CORPUS]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    queries = [{"_id": q, "text": text} for q, text in QUERIES.items()]
    (folder / "queries-train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{g}" for q, d, g in QRELS]
    (folder / "qrels-train.tsv").write_text("\n".join(lines) + "\n")
    return folder


def stage(uri: str) -> dict[str, Any]:
    search = {"feature_uri": uri, "query": {"input_mode": "text", "value": "{{INPUT.query}}"}, "top_k": 20}
    return {
        "stage_name": "search",
        "stage_type": "filter",
        "config": {"stage_id": "feature_search", "parameters": {"searches": [search], "final_top_k": 20}},
    }


def test_eval_upload_and_run_compare_two_retrievers(tmp_path: Path) -> None:
    folder = beir_folder(tmp_path)
    data_dir = tmp_path / "data"
    loaded = siftline("load", str(folder), "--collection", "tiny", "--data-dir", str(data_dir))
    assert loaded.returncode == 0, loaded.stderr

    svc = Services.open(Settings(data_dir=data_dir))
    try:
        ns = namespaces.ensure_namespace(svc.storage, "default")
        ids = {}
        for name, uri in (("lexical", BM25), ("semantic", DENSE)):
            body = {"retriever_name": name, "collection_identifiers": ["tiny"], "input_schema": SCHEMA,
                    "stages": [stage(uri)]}  # fmt: skip
            ids[name] = retrievers.create(svc.storage, ns, body).retriever_id
    finally:
        svc.close()

    uploaded = siftline("eval", "upload", str(folder), "--split", "train", "--data-dir", str(data_dir))
    assert uploaded.returncode == 0, uploaded.stderr
    summary = json.loads(uploaded.stdout.strip().splitlines()[-1])
    assert summary["query_count"] == 7  # q8 has no judgement
    assert summary["dataset_name"] == "tiny-train" and summary["dataset_id"].startswith("ds_")

    ran = siftline(
        "eval", "run", "lexical", "--dataset", "tiny-train", "--compare", "semantic", "--data-dir", str(data_dir),
        env=WIDE,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    runs = json.loads(ran.stdout.strip().splitlines()[-1])
    assert set(runs) == {"lexical", "semantic"}
    output = ran.stderr
    assert "7/7" in output  # the progress bars' final counts

    # the table: a header with every metric, a row per retriever and k
    header = next(line for line in output.splitlines() if "ndcg" in line and "retriever" in line)
    assert all(m in header for m in metrics.METRICS)
    rows = {
        (cells[0], cells[1]): cells[2:]
        for line in output.splitlines()
        if len(cells := [c for c in re.split(r"[│┃|\s]+", line) if c]) == 2 + len(metrics.METRICS)
        and cells[0] in runs
    }
    assert set(rows) == {(name, k) for name in runs for k in ("1", "5", "10", "20")}
    ndcg = metrics.METRICS.index("ndcg")
    assert rows[("lexical", "10")][ndcg] == f"{5 / 7:.4f}"

    # the paired comparison: semantic - lexical over the seven queries
    line = next(line for line in output.splitlines() if "p_value" in line)
    assert "ndcg@10" in line and "over 7 queries" in line
    figures = dict(re.findall(r"(n|mean_diff|ci_low|ci_high|p_value) (-?\d+\.\d+)", line))
    assert set(figures) == {"n", "mean_diff", "ci_low", "ci_high", "p_value"}
    assert float(figures["n"]) == 7 and 0 <= float(figures["p_value"]) <= 1

    svc = Services.open(Settings(data_dir=data_dir))
    try:
        ns = namespaces.ensure_namespace(svc.storage, "default")
        dataset = svc.storage.get_dataset(ns.namespace_id, "tiny-train")
        assert dataset is not None and dataset.dataset_id == summary["dataset_id"]
        by_id = {q["query_id"]: q for q in dataset.queries}
        assert sorted(by_id) == ["q1", "q2", "q3", "q4", "q5", "q6", "q7"]
        assert by_id["q1"]["query_input"] == {"query": QUERIES["q1"]}
        assert by_id["q3"]["relevant_documents"] == ["bees"]
        assert by_id["q3"]["relevance_scores"] == {"bees": 1, "coffee": 0}
        assert by_id["q2"]["relevance_scores"] == {"glacier": 2}

        records = {}
        for name, evaluation_id in runs.items():
            run = svc.storage.get_evaluation(ns.namespace_id, evaluation_id)
            assert run is not None and run.status == "completed", run
            assert run.retriever_id == ids[name] and run.dataset_id == summary["dataset_id"]
            assert run.results["evaluated_queries"] == 7 and run.results["skipped_queries"] == 0
            listed, total = svc.storage.list_evaluations(
                ns.namespace_id, ids[name], "completed", "tiny-train", 10, 0
            )
            assert total == 1 and listed[0].evaluation_id == evaluation_id
            records[name] = run
            # what the table shows is what was stored
            for k, values in run.results["metrics_by_k"].items():
                assert rows[(name, k)] == [f"{values[m]:.4f}" for m in metrics.METRICS]
        lexical = records["lexical"].results
        assert lexical["metrics_by_k"]["10"]["ndcg"] == pytest.approx(5 / 7)
        assert lexical["metrics_by_k"]["1"]["mrr"] == pytest.approx(5 / 7)
        assert lexical["metrics_by_k"]["20"]["recall"] == pytest.approx(5 / 7)
        nothing = {o["query_id"]: o["retrieved_count"] for o in lexical["query_results"]}
        assert nothing["q6"] == nothing["q7"] == 0

        per_query = [
            {o["query_id"]: o["metrics"]["10"]["ndcg"] for o in records[name].results["query_results"]}
            for name in ("semantic", "lexical")
        ]
        shared = sorted(per_query[0])
        expected = metrics.paired_test([per_query[0][q] for q in shared], [per_query[1][q] for q in shared])
        for key, value in expected.items():
            assert float(figures[key]) == pytest.approx(value, abs=5e-5)
    finally:
        svc.close()


def test_eval_upload_without_the_split_fails_with_a_clear_message(tmp_path: Path) -> None:
    folder = beir_folder(tmp_path)
    done = siftline("eval", "upload", str(folder), "--split", "dev", "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 1
    assert "qrels-dev.tsv" in done.stderr


def test_eval_run_of_an_unknown_dataset_or_retriever_fails_with_a_clear_message(tmp_path: Path) -> None:
    folder = beir_folder(tmp_path)
    data_dir = tmp_path / "data"
    uploaded = siftline("eval", "upload", str(folder), "--split", "train", "--data-dir", str(data_dir))
    assert uploaded.returncode == 0, uploaded.stderr
    unknown_dataset = siftline("eval", "run", "lexical", "--dataset", "nowhere", "--data-dir", str(data_dir))
    assert unknown_dataset.returncode == 1
    assert "nowhere" in unknown_dataset.stderr
    unknown_retriever = siftline(
        "eval", "run", "nobody", "--dataset", "tiny-train", "--data-dir", str(data_dir)
    )
    assert unknown_retriever.returncode == 1
    assert "nobody" in unknown_retriever.stderr


def test_uploading_the_same_split_twice_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    folder = beir_folder(tmp_path)
    data_dir = tmp_path / "data"
    first = siftline("eval", "upload", str(folder), "--split", "train", "--data-dir", str(data_dir))
    assert first.returncode == 0, first.stderr
    again = siftline("eval", "upload", str(folder), "--split", "train", "--data-dir", str(data_dir), env=WIDE)
    assert again.returncode == 1
    assert "already exists" in again.stderr, again.stderr
    renamed = siftline(
        "eval", "upload", str(folder), "--split", "train", "--name", "tiny-again", "--data-dir", str(data_dir)
    )
    assert renamed.returncode == 0, renamed.stderr
    assert json.loads(renamed.stdout.strip().splitlines()[-1])["dataset_name"] == "tiny-again"


def test_eval_run_compare_on_a_single_query_still_reports_both_runs(tmp_path: Path) -> None:
    """A paired test needs two queries; with one, the runs, the table and their ids are still reported, with
    no traceback."""
    folder = beir_folder(tmp_path)
    data_dir = tmp_path / "data"
    loaded = siftline("load", str(folder), "--collection", "tiny", "--data-dir", str(data_dir))
    assert loaded.returncode == 0, loaded.stderr
    svc = Services.open(Settings(data_dir=data_dir))
    try:
        ns = namespaces.ensure_namespace(svc.storage, "default")
        for name, uri in (("lexical", BM25), ("semantic", DENSE)):
            body = {"retriever_name": name, "collection_identifiers": ["tiny"], "input_schema": SCHEMA,
                    "stages": [stage(uri)]}  # fmt: skip
            retrievers.create(svc.storage, ns, body)
        one = {"query_id": "q1", "query_input": {"query": QUERIES["q1"]}, "relevant_documents": ["volcano"]}
        evaluations.create_dataset(svc.storage, ns, {"dataset_name": "one", "queries": [one]})
    finally:
        svc.close()
    ran = siftline(
        "eval", "run", "lexical", "--dataset", "one", "--compare", "semantic", "--data-dir", str(data_dir),
        env=WIDE,
    )  # fmt: skip
    assert "Traceback" not in ran.stderr, ran.stderr
    assert ran.returncode == 0, ran.stderr
    assert "one: 1 queries" in ran.stderr  # the table
    assert set(json.loads(ran.stdout.strip().splitlines()[-1])) == {"lexical", "semantic"}
