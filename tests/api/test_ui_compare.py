"""The inspector's compare page and its "Replay now" form over HTTP (in-process, the session cookie kept as a
browser would): after writes, a replay shows exactly the documents that moved, appeared and disappeared;
the form is CSRF-checked; another namespace's executions are not found; a record whose documents were
not kept gives a message page. Then the page's view on hand-made comparisons (lines, filters, deltas)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from helpers import ADMIN_KEY, bearer, served, settings_for
from siftline.api.ui.comparison import compare_view, count_delta, read_k, time_delta
from siftline.api.ui.ranks import GUTTER_PX, ROW_PX
from siftline.features.embedder import TextEmbedder
from siftline.service.container import Services

R = "/v1/retrievers"
URI = "mixpeek://vectors@v1/v"
SEARCH = [{"stage_name": "search", "config": {"stage_id": "feature_search", "parameters": {
    "searches": [{"feature_uri": URI, "query": {"input_mode": "vector", "value": [1, 0]}, "top_k": 50}],
    "final_top_k": 20}}}]  # fmt: skip
ROW = re.compile(r'<li class="cmp-row [^"]*" data-doc="\d+" data-id="([^"]+)" data-status="(\w+)"')


def angle(theta: float) -> list[float]:
    return [math.cos(theta), math.sin(theta)]


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ten_and_run(client: TestClient, namespace: str | None = None) -> str:
    """d0…d9 at angles 0, 0.1, …, 0.9 from the query (ranked d0 first), a retriever, one execution."""
    h = bearer(ADMIN_KEY, namespace) if namespace else {}
    if namespace:
        client.post("/v1/namespaces", json={"namespace_name": namespace}, headers=h)
    body = {"collection_name": "c", "vector_configs": [{"name": "v", "dimension": 2, "metric": "cosine"}]}
    ok(client.post("/v1/collections", json=body, headers=h))
    docs = [{"document_id": f"d{i}", "n": i, "vectors": {"v": angle(0.1 * i)}} for i in range(10)]
    ok(client.post("/v1/collections/c/documents/batch", json={"documents": docs}, headers=h))
    retriever = {"retriever_name": "r", "collection_identifiers": ["c"], "stages": SEARCH}
    rid = ok(client.post(R, json=retriever, headers=h))["retriever_id"]
    return str(ok(client.post(f"{R}/{rid}/execute", json={}, headers=h))["execution_id"])


def sign_in(ui: TestClient, key: str, namespace: str = "default") -> None:
    token = re.search(r'name="login_token" value="([^"]+)"', ui.get("/ui/login").text)
    assert token is not None
    form = {"login_token": token.group(1), "api_key": key, "namespace": namespace}
    assert ui.post("/ui/login", data=form).status_code == 303


def csrf(ui: TestClient) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', ui.get("/ui/").text)
    assert found is not None
    return found.group(1)


def columns(html: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(document id, status) of each row of column a and of column b, in rank order."""
    start_a, start_b = html.find('class="cmp-col cmp-col-a"'), html.find('class="cmp-col cmp-col-b"')
    assert 0 < start_a < start_b
    return ROW.findall(html[start_a:start_b]), ROW.findall(html[start_b:])


@pytest.fixture
def ui(client: TestClient, make_key: Callable[..., str]) -> TestClient:
    """A browser's cookie jar on the same app, signed in to namespace default."""
    browser = TestClient(client.app, follow_redirects=False)
    sign_in(browser, make_key())
    return browser


def executions_in(services: Services, namespace_name: str = "default") -> int:
    ns = services.storage.get_namespace(namespace_name)
    assert ns is not None
    return services.storage.list_executions(ns.namespace_id, limit=1, offset=0)[1]


# -- over HTTP ---------------------------------------------------------------------------------------------


def test_replay_now_after_writes_shows_exactly_what_moved_appeared_and_disappeared(
    client: TestClient, ui: TestClient
) -> None:
    before = ten_and_run(client)
    ok(client.patch("/v1/collections/c/documents/d7", json={"vectors": {"v": angle(0.05)}}))  # 8th → 2nd
    assert client.delete("/v1/collections/c/documents/d9").status_code == 200  # dropped
    ok(client.post("/v1/collections/c/documents", json={"document_id": "dx", "vectors": {"v": angle(0.15)}}))

    done = ui.post(f"/ui/executions/{before}/replay", data={"csrf_token": csrf(ui)})
    assert done.status_code == 303
    found = re.fullmatch(rf"/ui/compare\?a={before}&b=(exec_\w+)", done.headers["location"])
    assert found is not None and found.group(1) != before
    after = found.group(1)
    page = ui.get(done.headers["location"])
    assert page.status_code == 200 and page.headers["content-security-policy"].startswith("default-src")
    html = page.text
    col_a, col_b = columns(html)
    assert [d for d, _ in col_a] == [f"d{i}" for i in range(10)]
    assert [d for d, _ in col_b] == ["d0", "d7", "d1", "dx", "d2", "d3", "d4", "d5", "d6", "d8"]
    status = dict(col_a) | dict(col_b)
    by = {s: sorted(d for d, t in status.items() if t == s) for s in ("moved", "new", "dropped", "same")}
    assert by == {"moved": ["d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8"], "new": ["dx"], "dropped": ["d9"],
                  "same": ["d0"]}  # fmt: skip
    assert html.count('class="ln ln-up"') == 1 and html.count('class="ln ln-down"') == 7
    assert html.count('class="ln ln-same"') == 1
    assert html.count('class="stub stub-new"') == 1 and html.count('class="stub stub-dropped"') == 1
    assert re.search(r'class="mv mv-up" data-doc="\d+" [^>]*>\+6</text>', html)  # d7 rose 6 places
    assert "<dt>Overlap@10</dt>\n    <dd>0.90" in html and "<dt>Jaccard</dt>\n    <dd>0.82" in html
    assert f'href="/ui/executions/{before}">{before}</a> <span class="muted">(a)</span>' in html  # replay of
    assert f'action="/ui/executions/{before}/replay"' in html and 'id="replay-a"' in html

    moved = ui.get(f"/ui/compare?a={before}&b={after}&show=moved").text
    col_a, col_b = columns(moved)
    assert {s for _, s in col_a + col_b} == {"moved"} and len(col_a) == len(col_b) == 8
    assert [d for d, _ in col_b][:2] == ["d7", "d1"]
    new = ui.get(f"/ui/compare?a={before}&b={after}&show=new").text
    assert "None of these were in a." in new and ROW.findall(new) == [("dx", "new")]
    dropped = ui.get(f"/ui/compare?a={before}&b={after}&show=dropped").text
    assert "None of these are in b." in dropped
    assert ROW.findall(dropped) == [("d9", "dropped")]
    top5 = ui.get(f"/ui/compare?a={before}&b={after}&k=5").text
    assert "<dt>Overlap@5</dt>\n    <dd>0.60" in top5 and 'data-k="5" aria-current="true"' in top5


def test_replaying_unchanged_data_shows_identical_results(client: TestClient, ui: TestClient) -> None:
    before = ten_and_run(client)
    page = ui.get(f"/ui/executions/{before}").text
    assert 'id="replay"' in page and f'action="/ui/executions/{before}/replay"' in page
    done = ui.post(f"/ui/executions/{before}/replay", data={"csrf_token": csrf(ui)})
    html = ui.get(done.headers["location"]).text
    assert 'id="identical"' in html and "<dd>1.00" in html
    assert {s for _, s in ROW.findall(html)} == {"same"} and 'class="ln ln-up"' not in html
    after = done.headers["location"].rsplit("b=", 1)[1]
    replay_page = ui.get(f"/ui/executions/{after}").text
    assert f'href="/ui/compare?a={before}&amp;b={after}"' in replay_page  # Compare with the original


def test_replay_now_needs_the_csrf_token_and_this_site(
    client: TestClient, ui: TestClient, services: Services
) -> None:
    before = ten_and_run(client)
    made = executions_in(services)
    token, path = csrf(ui), f"/ui/executions/{before}/replay"
    assert ui.post(path).status_code == 403
    assert ui.post(path, data={"csrf_token": token[:-2] + "00"}).status_code == 403
    assert (
        ui.post(path, data={"csrf_token": token}, headers={"Origin": "https://evil.example"}).status_code
        == 403
    )
    assert executions_in(services) == made  # nothing ran
    header = ui.post(path, headers={"X-CSRF-Token": token})
    assert header.status_code == 303 and executions_in(services) == made + 1


def test_another_namespaces_executions_cannot_be_compared_or_replayed(
    client: TestClient, services: Services, make_key: Callable[..., str]
) -> None:
    theirs = ten_and_run(client, "ns-b")
    ours = ten_and_run(client, "ns-a")
    ui = TestClient(client.app, follow_redirects=False)
    sign_in(ui, make_key("ns-a"), "ns-a")
    assert ui.get(f"/ui/compare?a={ours}&b={ours}").status_code == 200
    for a, b in ((theirs, ours), (ours, theirs), (theirs, theirs)):
        page = ui.get(f"/ui/compare?a={a}&b={b}")
        assert page.status_code == 404 and "Not found" in page.text and theirs not in columns_safe(page.text)
    made = executions_in(services, "ns-b")
    page = ui.post(f"/ui/executions/{theirs}/replay", data={"csrf_token": csrf(ui)})
    assert page.status_code == 404 and executions_in(services, "ns-b") == made


def columns_safe(html: str) -> str:
    """The page without its message: what it lists (the 404 message names the id asked for)."""
    return re.sub(r'<section class="card narrow" id="message">.*?</section>', "", html, flags=re.S)


def test_without_a_session_compare_and_replay_go_to_the_sign_in_form(client: TestClient) -> None:
    ui = TestClient(client.app, follow_redirects=False)
    page = ui.get("/ui/compare?a=exec_x&b=exec_y")
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/login?next=%2Fui%2Fcompare%3Fa%3Dexec_x%26b%3Dexec_y"
    post = ui.post("/ui/executions/exec_x/replay", data={"csrf_token": "anything"})
    assert post.status_code == 303  # after signing in: the execution's page, not this POST
    assert post.headers["location"] == "/ui/login?next=%2Fui%2Fexecutions%2Fexec_x"


def test_a_hand_edited_compare_url_gets_a_page_not_an_error(client: TestClient, ui: TestClient) -> None:
    run = ten_and_run(client)
    missing = ui.get(f"/ui/compare?a={run}")
    assert missing.status_code == 400 and "Pick two executions" in missing.text
    for query in ("k=abc", "k=-3", "k=99999999", "show=nonsense", "k="):
        assert ui.get(f"/ui/compare?a={run}&b={run}&{query}").status_code == 200, query
    assert "<dt>Overlap@1</dt>" in ui.get(f"/ui/compare?a={run}&b={run}&k=-3").text
    assert ui.get("/ui/compare?a=exec_nope&b=exec_nope").status_code == 404


@pytest.fixture
def forgetful(tmp_path: Path, embedder: TextEmbedder) -> Iterator[tuple[TestClient, TestClient]]:
    """A server that keeps no record's documents (retain_documents_last=0): an API client and a browser."""
    with served(settings_for(tmp_path / "data", retain_documents_last=0), embedder) as (client, _):
        ui = TestClient(client.app, follow_redirects=False)
        sign_in(ui, ADMIN_KEY)
        yield client, ui


def test_records_without_their_documents_give_a_message_page_not_a_500(
    forgetful: tuple[TestClient, TestClient],
) -> None:
    client, ui = forgetful
    before = ten_and_run(client)
    done = ui.post(f"/ui/executions/{before}/replay", data={"csrf_token": csrf(ui)})
    assert done.status_code == 303  # the replay runs; comparing it is what cannot be done
    page = ui.get(done.headers["location"])
    assert page.status_code == 409 and "Cannot compare" in page.text and "are not kept" in page.text
    assert f'href="/ui/executions/{before}"' in page.text
    assert ok(client.delete("/v1/collections/c")) is not None
    replay = ui.post(f"/ui/executions/{before}/replay", data={"csrf_token": csrf(ui)})
    assert replay.status_code == 409 and "Cannot replay" in replay.text and "was deleted" in replay.text


# -- the view on hand-made comparisons ----------------------------------------------------------------------


def doc(i: str, ra: int | None, rb: int | None, sa: float = 0.5, sb: float = 0.5) -> dict[str, Any]:
    move = None if ra is None or rb is None else ra - rb
    status = "new" if ra is None else "dropped" if rb is None else "same" if move == 0 else "moved"
    delta = None if ra is None or rb is None else sb - sa
    return {"collection_id": "col_1", "document_id": i, "rank_a": ra, "rank_b": rb, "move": move,
            "score_a": sa if ra else None, "score_b": sb if rb else None, "score_delta": delta, "status": status}  # fmt: skip


def side(execution_id: str, **extra: Any) -> dict[str, Any]:
    return {"execution_id": execution_id, "status": "completed", "created_at": "2026-01-31T12:00:00Z",
            "duration_ms": 10.0, "credits_used": 1.0, "total_returned": 3, "retriever_id": "ret_1",
            "execution_mode": "saved", "replay_of": None, "error": None, **extra}  # fmt: skip


def comparison(**changes: Any) -> dict[str, Any]:
    base = {
        "a": side("exec_a"), "b": side("exec_b", duration_ms=30.0, replay_of="exec_a"), "k": 2,
        "overlap_at_k": 0.5, "jaccard": 0.5, "rbo": 0.4, "rbo_p": 0.9, "identical": False,
        "documents": [doc("x", 1, 2, 0.9, 0.8), doc("y", 2, None), doc("z", 3, 3), doc("w", None, 1)],
        "stages": [
            {"stage_name": "search", "a": {"duration_ms": 10.0, "input_count": 0, "output_count": 3},
             "b": {"duration_ms": 30.0, "input_count": 0, "output_count": 3}},
            {"stage_name": "rr", "a": {"duration_ms": 5.0, "input_count": 3, "output_count": 3}, "b": None},
        ],
    }  # fmt: skip
    base.update(changes)
    return base


def test_the_columns_and_lines_follow_the_ranks() -> None:
    view = compare_view(comparison(), retriever_names={"ret_1": "notes"}, collections={"col_1": "things"})
    assert [(r.document_id, r.rank, r.y) for r in view.rows_a] == [("x", 1, 12), ("y", 2, 36), ("z", 3, 60)]
    assert [r.document_id for r in view.rows_b] == ["w", "x", "z"] and view.rows_b[0].collection == "things"
    x, z = view.lines
    assert (x.direction, x.label, x.path) == ("down", "\u22121", f"M0 12C110 12 110 36 {GUTTER_PX} 36")
    assert (z.direction, z.label) == ("same", "")
    assert [(s.status, s.y) for s in view.stubs] == [("dropped", 36.0), ("new", 12.0)]
    assert view.height == 3 * ROW_PX and view.cut_y == 2 * ROW_PX  # the top-2 boundary
    assert view.rows_b[1].score_delta == "\u22120.1" and view.a.retriever == "notes"
    assert {f.key: f.count for f in view.filters} == {"all": 4, "changed": 3, "moved": 1, "new": 1,
                                                      "dropped": 1, "same": 1}  # fmt: skip
    facts = {f.label: f for f in view.facts}
    assert facts["Overlap@2"].value == "0.50" and facts["Overlap@2"].note == "1 shared in the top 2"
    assert facts["Moved"].href == "/ui/compare?a=exec_a&b=exec_b&k=2&show=moved"


def test_a_filter_lays_out_only_what_it_keeps() -> None:
    view = compare_view(comparison(), show="changed")
    assert [r.document_id for r in view.rows_a] == ["x", "y"] and [r.y for r in view.rows_a] == [12.0, 36.0]
    assert [r.document_id for r in view.rows_b] == ["w", "x"] and view.cut_y is None
    assert compare_view(comparison(), show="bogus").show == "all"
    new = compare_view(comparison(), show="new")
    assert new.rows_a == [] and [s.status for s in new.stubs] == ["new"] and new.lines == []


def test_stage_deltas_say_slower_faster_fewer_more_and_ignore_noise() -> None:
    search, rr = compare_view(comparison()).stages
    assert search.time is not None and (search.time.text, search.time.tone) == ("+20.0 ms", "slower")
    assert rr.b is None and rr.time is None and rr.outputs is None
    assert time_delta(10.0, 10.5) is not None and time_delta(10.0, 10.5).tone == ""  # type: ignore[union-attr]
    assert time_delta(0.01, 0.03).tone == ""  # type: ignore[union-attr]
    assert time_delta(30.0, 10.0).tone == "faster"  # type: ignore[union-attr]
    assert count_delta(5, 2).text == "\u22123" and count_delta(5, 2).tone == "fewer"  # type: ignore[union-attr]
    assert count_delta(2, 2).text == "\u00b10" and time_delta(None, 1.0) is None
    assert [read_k(t) for t in ("", "abc", "0", "7", "20000")] == [10, 10, 1, 7, 10_000]


def test_move_labels_never_overlap_the_largest_move_wins() -> None:
    crossing = [
        doc("p", 1, 4),
        doc("q", 2, 3),
        doc("r", 3, 2),
        doc("s", 4, 1),
    ]  # every midpoint at one height
    view = compare_view(comparison(documents=crossing))
    assert len({ln.label_y for ln in view.lines}) == 1
    assert [ln.label for ln in view.lines] == ["\u22123", "", "", ""]
    assert [ln.move for ln in view.lines] == [-3, -1, 1, 3]  # the tooltips still say it


def test_an_analyzed_execution_shows_estimate_beside_actual(client: TestClient, ui: TestClient) -> None:
    ten_and_run(client)
    rid = ok(client.get(f"{R}/r"))["retriever_id"]
    analysis = ok(client.post(f"{R}/{rid}/execute/explain", json={"analyze": True}))
    html = ui.get(f"/ui/executions/{analysis['execution_id']}").text
    assert "Estimate against actual" in html
    step = analysis["execution_plan"][0]  # the search: estimated from the one earlier run, 10 found
    assert step["actual"]["output"] == 10 and step["estimated_output"] == 10
    row = html[html.index('class="profile analysis"') :]
    assert re.search(r"<strong>search</strong>.*?10 → 10 <span[^>]*>\u00d71</span>", row, re.S)
    assert "from the medians of 1 earlier run(s)" in row
    plain = ui.get(f"/ui/executions/{ten_and_run_again(client, rid)}").text
    assert "Estimate against actual" not in plain


def ten_and_run_again(client: TestClient, rid: str) -> str:
    return str(ok(client.post(f"{R}/{rid}/execute", json={}))["execution_id"])
