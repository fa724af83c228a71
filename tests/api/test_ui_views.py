"""The inspector's view helpers on hand-made records: score lineage bars, the waterfall (offsets, merged
stages, severity marks, budget stops), the funnel, the list's query string, and the rendered partials."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from siftline.api.ui import listing
from siftline.api.ui.auth import safe_next
from siftline.api.ui.lineage import lineage_view
from siftline.api.ui.render import ENV, NONE, ms, score
from siftline.api.ui.views import execution_view, result_fields
from siftline.api.ui.waterfall import funnel, waterfall
from siftline.service.inspector import PlannedStages

LINEAGE = {
    "origin": {"stage_name": "search", "stage_id": "feature_search", "fusion": "rrf", "rrf_k": 60, "score": 0.0325},
    "legs": [
        {"index": 0, "feature_uri": "mixpeek://text_extractor@v1/text_embedding", "kind": "dense", "rank": 1,
         "raw_score": 0.81, "normalized": 0.0164, "weight": 1.0, "contribution": 0.0164},
        {"index": 1, "feature_uri": "mixpeek://text_extractor@v1/bm25", "kind": "bm25", "rank": 2,
         "raw_score": 7.2, "normalized": 0.0161, "weight": 1.0, "contribution": 0.0161},
        {"index": 2, "feature_uri": "mixpeek://vectors@v1/emb", "kind": "dense", "rank": None,
         "raw_score": None, "normalized": None, "weight": 1.0, "contribution": 0},
    ],
    "steps": [
        {"stage_name": "rr", "stage_id": "rerank", "score_before": 0.0325, "score_after": 0.91,
         "change": 0.8775, "rank_before": 3, "rank_after": 1},
        {"stage_name": "norm", "stage_id": "score_normalize", "score_before": 0.91, "score_after": 0.5,
         "change": -0.41, "rank_before": 1, "rank_after": 1},
    ],
    "score": 0.5,
}  # fmt: skip


def stage(inp: int, out: int, duration: float, **extra: Any) -> dict[str, Any]:
    stats = {"input_count": inp, "output_count": out, "duration_ms": duration,
             "efficiency": round(out / inp, 6) if inp else 0.0, "stage_cache_hit": False, "cached_at": None,
             "error": None, "metadata": {"credits": 0.1}}  # fmt: skip
    for key, value in extra.items():
        if key == "metadata":
            stats["metadata"].update(value)
        else:
            stats[key] = value
    return stats


SEARCHES = [
    {"index": 0, "feature_uri": "mixpeek://text_extractor@v1/all_minilm_l6_v2", "kind": "dense", "path": "exact",
     "results": 40, "top_k": 100},
    {"index": 1, "feature_uri": "mixpeek://text_extractor@v1/bm25", "kind": "bm25", "path": "bm25", "results": 12},
]  # fmt: skip


def detail(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "execution_id": "exec_hand",
        "retriever_id": "ret_hand",
        "status": "completed",
        "created_at": "2026-01-31T12:00:00.000000Z",
        "completed_at": "2026-01-31T12:00:00.100000Z",
        "query_summary": "cats",
        "stage_statistics": {
            "stages": {
                "search": stage(0, 40, 60.0, metadata={"searches": SEARCHES, "fusion": "rrf"}),
                "keep": stage(40, 30, 2.0, metadata={"optimized": {"rule": "push_down_filters", "merged_into": "search"}}),
                "rr": stage(30, 2, 30.0),
                "top": stage(2, 2, 0.5, stage_cache_hit=True, cached_at=1_700_000_000.0),
            },
            "total_time_ms": 92.5,
            "credits_used": 2.5,
        },
        "budget": {"credits_used": 2.5, "credits_remaining": 7.5, "max_credits": 10.0, "max_time_ms": None,
                   "time_used_ms": 92.5},
        "warnings": ["Filter on 'kind' uses a field without a payload index"],
        "optimization_applied": True,
        "optimization_summary": {"original_stage_count": 4, "optimized_stage_count": 3, "optimization_time_ms": 0.1,
                                 "rules_applied": ["push_down_filters"], "stage_reduction_pct": 25.0,
                                 "rewrites": [{"rule": "push_down_filters", "stages": ["keep"], "into": "search",
                                               "detail": "evaluated by storage"}]},
        "learned_fusion_context": None,
        "documents": [
            {"document_id": "d1", "collection_id": "col_1", "score": 0.5, "title": "Cats", "year": 2020,
             "lineage": LINEAGE},
            {"document_id": "d2", "collection_id": "col_1", "score": 0.25, "title": "Dogs", "year": 2019},
        ],
        "documents_retained": True,
        "total_returned": 2,
        "stages_completed": 4,
        "total_stages": 4,
    }  # fmt: skip
    base.update(changes)
    return base


def view_of(d: dict[str, Any], stages: list[dict[str, Any]] | None = None) -> Any:
    planned = PlannedStages(stages, "record" if stages is not None else "unknown")
    return execution_view(
        d, mode="saved", planned=planned, collections={"col_1": "notes"}, retriever_name="hand"
    )


# -- score lineage ---------------------------------------------------------------------------------------


def test_lineage_legs_are_bars_of_their_share_of_the_fused_score() -> None:
    view = lineage_view(LINEAGE)
    assert view is not None
    assert (view.fusion, view.origin_stage, view.origin_score, view.score) == (
        "RRF (k = 60)",
        "search",
        0.0325,
        0.5,
    )
    dense, bm25, missed = view.legs
    assert dense.width == 100.0 * 0.0164 / 0.0325 or dense.width == pytest.approx(50.46, abs=0.01)
    assert dense.share == pytest.approx(0.0164 / 0.0325, abs=1e-4) and dense.label == "text_embedding"
    assert bm25.rank == 2 and bm25.kind == "bm25"
    assert missed.rank is None and missed.width == 0.0 and missed.contribution == 0.0


def test_lineage_steps_say_which_way_each_stage_moved_the_score() -> None:
    view = lineage_view(LINEAGE)
    assert view is not None
    rerank, norm = view.steps
    assert (rerank.direction, rerank.rank_before, rerank.rank_after) == ("up", 3, 1)
    assert rerank.after_width == 100.0 and rerank.before_width == pytest.approx(3.57, abs=0.01)
    assert norm.direction == "down" and norm.change == -0.41


@pytest.mark.parametrize(
    ("origin", "label"),
    [({"fusion": None}, "single search"), ({"fusion": "weighted"}, "weighted"), ({"fusion": "dbsf"}, "DBSF"),
     ({"fusion": "learned"}, "learned"), ({"fusion": "max"}, "max")],
)  # fmt: skip
def test_lineage_names_every_fusion(origin: dict[str, Any], label: str) -> None:
    one = {**LINEAGE, "origin": {**LINEAGE["origin"], **origin}, "legs": LINEAGE["legs"][:1]}
    view = lineage_view(one)
    assert view is not None and view.fusion == label


def test_a_document_without_lineage_has_no_lineage_view() -> None:
    assert lineage_view(None) is None
    assert lineage_view("not a dict") is None
    assert lineage_view({}) is not None  # an empty lineage still renders (no legs, no steps)


def test_the_lineage_partial_renders_bars_and_the_missing_leg() -> None:
    html = ENV.get_template("_lineage.html").render(lin=lineage_view(LINEAGE))
    assert "RRF (k = 60)" in html and "not found" in html and "text_embedding" in html
    assert 'style="width:50.46%"' in html and "3 → 1" in html and "+0.8775" in html


def test_the_results_partial_asks_for_explain_when_documents_have_no_lineage() -> None:
    d = detail()
    for doc in d["documents"]:
        doc.pop("lineage", None)
    view = view_of(d)
    assert not view.has_lineage
    html = ENV.get_template("_results.html").render(view=view)
    assert "run with <code>explain: true</code> to record lineage" in html


def test_results_show_rank_collection_score_and_the_commonest_payload_fields() -> None:
    view = view_of(detail())
    assert view.result_fields == ["title", "year"]
    first = view.results[0]
    assert (first.rank, first.document_id, first.collection, first.score) == (1, "d1", "notes", 0.5)
    assert first.fields == [("title", "Cats"), ("year", "2020")] and first.lineage is not None
    assert view.results[1].lineage is None
    many = [{"document_id": str(i), **{f"f{j}": j for j in range(6)}} for i in range(3)]
    assert len(result_fields(many)) == 3


# -- waterfall and funnel --------------------------------------------------------------------------------


def test_stages_start_where_the_previous_ended_and_a_merged_stage_sits_inside_its_host() -> None:
    flow = waterfall(detail(), {"search": "feature_search", "rr": "rerank"})
    by_name = {r.name: r for r in flow.rows}
    assert [r.name for r in flow.rows] == ["search", "keep", "rr", "top"]
    assert by_name["search"].offset_ms == 0 and by_name["keep"].offset_ms == 0  # inside search
    assert by_name["rr"].offset_ms == 60.0 and by_name["top"].offset_ms == 90.0
    assert flow.total_ms == 92.5 and by_name["rr"].left == pytest.approx(64.865, abs=0.001)
    assert by_name["search"].stage_id == "feature_search" and by_name["keep"].merged_into == "search"
    legs = by_name["search"].legs
    assert [leg.label for leg in legs] == ["all_minilm_l6_v2", "bm25"] and not legs[0].timed
    assert legs[0].left == by_name["search"].left and legs[0].width == by_name["search"].width


def test_marks_name_slow_stages_big_drops_cache_hits_and_merges() -> None:
    flow = waterfall(detail(), {})
    marks = {r.name: {m.kind for m in r.marks} for r in flow.rows}
    assert marks["search"] == {"slow"}  # 60 of 92.5 ms
    assert marks["rr"] == {"drop"}  # 2 of 30 kept
    assert marks["top"] == {"cache"}
    assert marks["keep"] == {"merged"}


def test_a_budget_stop_marks_the_stage_it_stopped_at_even_without_statistics() -> None:
    d = detail(status="failed", error="Budget exceeded: Maximum credits limit reached",
               failed_stage={"stage_name": "extra", "stage_id": "rerank", "stage_index": 4})  # fmt: skip
    flow = waterfall(d, {"extra": "rerank"})
    last = flow.rows[-1]
    assert (last.name, last.state, last.stage_id) == ("extra", "stopped", "rerank")
    assert [m.kind for m in last.marks] == ["budget"] and last.offset_ms == 90.5  # after the last that ran


def test_a_failed_stage_is_marked_as_an_error() -> None:
    d = copy.deepcopy(detail(status="failed", error="Stage 'rr' (rerank, index 2) failed: boom"))
    d["stage_statistics"]["stages"]["rr"]["error"] = "boom"
    d["failed_stage"] = {"stage_name": "rr"}
    marks = {r.name: [m.kind for m in r.marks] for r in waterfall(d, {}).rows}
    assert "error" in marks["rr"] and "budget" not in marks["rr"]


def test_a_running_execution_shows_its_current_stage_until_now() -> None:
    d = detail(status="processing", current_stage="rr2", completed_at=None)
    flow = waterfall(d, {}, running_ms=500.0)
    assert flow.rows[-1].name == "rr2" and flow.rows[-1].state == "running"
    assert flow.total_ms == 500.0 and flow.rows[-1].duration_ms == pytest.approx(500.0 - 90.5)


def test_the_funnel_scales_counts_to_the_largest() -> None:
    rows = funnel(waterfall(detail(), {}).rows)
    assert [(f.name, f.input_count, f.output_count) for f in rows][:3] == [
        ("search", 0, 40),
        ("keep", 40, 30),
        ("rr", 30, 2),
    ]
    assert rows[0].width == 100.0 and rows[2].dropped == 28


# -- the whole page's view -------------------------------------------------------------------------------


def test_the_summary_strip_names_time_slowest_drop_credits_cache_warnings_optimizer_and_fusion() -> None:
    facts = {f.label: f for f in view_of(detail()).facts}
    assert facts["Total time"].value == "92.5 ms"
    assert facts["Slowest stage"].value == "search" and facts["Slowest stage"].tone == "warn"
    assert facts["Largest drop"].value == "rr" and "30 → 2" in facts["Largest drop"].note
    assert facts["Credits"].value == "2.5" and facts["Credits"].note == "of 10 credits"
    assert facts["Cache"].note == "1 stage hit"
    assert facts["Warnings"].value == "1" and facts["Warnings"].tone == "warn"
    assert facts["Optimizer"].value == "applied" and facts["Learned fusion"].value == "off"
    learned = view_of(
        detail(learned_fusion_context={"context_level": "segment", "sampled_weights": {"a": 0.7}})
    )
    assert {f.label: f.value for f in learned.facts}["Learned fusion"] == "segment"


def test_the_plan_shows_the_stages_as_written_and_as_run_with_the_rewrites() -> None:
    written = [{"stage_name": n, "config": {"stage_id": i, "parameters": {"k": 1}}}
               for n, i in (("search", "feature_search"), ("keep", "attribute_filter"), ("rr", "rerank"), ("top", "limit"))]  # fmt: skip
    view = view_of(detail(), written)
    assert [s.stage_id for s in view.plan_before or []] == [
        "feature_search",
        "attribute_filter",
        "rerank",
        "limit",
    ]
    assert view.plan_after[1].note == "run inside search (push_down_filters)"
    assert view.rewrites[0]["into"] == "search" and ("stage_reduction_pct", "25.0") in view.optimization
    html = ENV.get_template("_plan.html").render(view=view)
    assert "push_down_filters" in html and "As written" in html
    assert view_of(detail()).plan_before is None


def test_every_partial_renders_for_a_record_with_nothing_in_it() -> None:
    empty = {"execution_id": "exec_x", "status": "pending", "created_at": "2026-01-31T12:00:00Z"}
    view = view_of(empty)
    for name in ("_facts.html", "_waterfall.html", "_funnel.html", "_results.html", "_plan.html"):
        ENV.get_template(name).render(view=view)
    assert view.live and view.results == []
    assert "appear when the execution ends" in ENV.get_template("_results.html").render(view=view)


# -- formats and the list's query string ---------------------------------------------------------------


def test_number_formats() -> None:
    assert [ms(0.123), ms(12.34), ms(345.6), ms(2500), ms(None)] == [
        "0.12 ms",
        "12.3 ms",
        "346 ms",
        "2.50 s",
        NONE,
    ]
    assert [score(0.5), score(1.0), score(0.00001234), score(None)] == ["0.5", "1", "1.234e-05", NONE]


def test_the_list_reads_a_hand_edited_query_string_without_failing() -> None:
    f = listing.read_filters({"status": "nope", "mode": "adhoc", "limit": "9999", "offset": "-5", "sort": "x;drop",
                              "since": "yesterday", "until": "2026-01-31T10:00", "dir": "asc"})  # fmt: skip
    assert (f.status, f.mode, f.limit, f.offset, f.sort, f.since, f.dir) == (
        "",
        "adhoc",
        200,
        0,
        "time",
        "",
        "asc",
    )
    query = listing.list_query(f, None)
    assert query.until is not None and query.until.tzinfo is not None and query.mode == "adhoc"
    assert "sort=duration" in f.sort_link("duration") and "dir=" not in f.sort_link(
        "duration"
    )  # desc: the default
    assert listing.Filters(sort="duration").sort_link("duration") == "sort=duration&dir=asc"


@pytest.mark.parametrize(
    ("given", "expected"),
    [(None, "/ui/"), ("/ui/executions/exec_1?x=1", "/ui/executions/exec_1?x=1"), ("/ui", "/ui"),
     ("https://evil.example/ui/", "/ui/"), ("//evil.example/ui/", "/ui/"), ("/v1/namespaces", "/ui/"),
     ("/uix", "/ui/"), ("/ui/\\evil", "/ui/"), ("javascript:alert(1)", "/ui/"), ("/ui/\r\nSet-Cookie: x", "/ui/")],
)  # fmt: skip
def test_after_signing_in_only_paths_of_the_inspector_are_followed(given: str | None, expected: str) -> None:
    assert safe_next(given) == expected


def test_every_template_and_static_file_is_package_data() -> None:
    """A file the package-data globs of pyproject.toml miss would be absent from an installed wheel."""
    import tomllib
    from pathlib import Path, PurePosixPath

    import siftline.api.ui as ui

    root = Path(ui.__file__).parent
    config = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["siftline.api.ui"]
    files = [
        p.relative_to(root).as_posix()
        for d in ("templates", "static")
        for p in (root / d).rglob("*")
        if p.is_file()
    ]
    assert (
        files
        and [
            f
            for f in files
            if not any(PurePosixPath(f).match(g) and f.count("/") == g.count("/") for g in globs)
        ]
        == []
    )


def test_large_pages_go_gzip_compressed_when_the_client_takes_it() -> None:
    import gzip

    from starlette.responses import HTMLResponse

    from siftline.api.ui.render import GZIP_FROM, gzipped

    big = HTMLResponse("<tr><td>row</td></tr>" * (GZIP_FROM // 10), headers={"X-Kept": "1"})
    packed = gzipped(big, "gzip, deflate, br")
    assert packed.headers["content-encoding"] == "gzip" and packed.headers["x-kept"] == "1"
    assert gzip.decompress(bytes(packed.body)) == big.body and len(packed.body) < len(big.body) / 10
    assert gzipped(big, None) is big and gzipped(big, "br") is big
    small = HTMLResponse("<p>hi</p>")
    assert gzipped(small, "gzip") is small


def test_a_record_run_with_explain_shows_its_executed_plan_in_the_plan_card() -> None:
    explain_plan = {
        "stages": [
            {"stage_name": "search", "input_count": 0, "output_count": 40, "duration_ms": 60.0, "credits": 2.0,
             "stage_cache_hit": False, "optimized": None, "error": None},
            {"stage_name": "keep", "input_count": 40, "output_count": 30, "duration_ms": 2.0, "credits": 0.1,
             "stage_cache_hit": False, "optimized": {"rule": "push_down_filters", "merged_into": "search"}, "error": None},
            {"stage_name": "rr", "input_count": 30, "output_count": 2, "duration_ms": 30.0, "credits": 0.4,
             "stage_cache_hit": True, "optimized": None, "error": None},
        ],
        "total_time_ms": 90.0, "credits_used": 2.5,
        "executed_plan": [{"stage_name": "search", "stage_id": "feature_search", "absorbed": ["keep"]},
                          {"stage_name": "rr", "stage_id": "rerank", "absorbed": []}],
    }  # fmt: skip
    view = view_of(detail(explain_plan=explain_plan))
    assert view.profile is not None and view.profile.total_ms == 90.0 and view.profile.credits == "2.5"
    search, rr = view.profile.stages
    assert (search.absorbed, search.duration_ms, search.flow, search.credits) == (
        ["keep"],
        60.0,
        "0 → 30",
        "2.1",
    )
    assert search.share == pytest.approx(0.6667, abs=1e-4) and rr.cache_hit and rr.flow == "30 → 2"
    html = ENV.get_template("_plan.html").render(view=view)
    assert "Executed plan, as profiled" in html and "+ keep" in html and "/execute/explain" in html
    assert view_of(detail()).profile is None
    assert view_of(detail(explain_plan={"executed_plan": "nonsense"})).profile is None
