"""Comparing two executions in a real browser against a real server: tick two in the list and compare them
(lines, figures, k, filters, highlighting); "Replay now" on an execution lands on the comparison of the
original with its replay, identical on unchanged data. Every page may talk to the server only."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (in CI: fail) with the reason before any test runs
    expect = None

from siftline.testing.inspector_data import Seeded
from siftline.testing.server import Server

pytestmark = pytest.mark.slow
Inspector = tuple[Server, str, Seeded]


def execute(inspector: Inspector, query: str) -> str:
    server, key, seeded = inspector
    found = httpx.post(
        f"{server.url}/v1/retrievers/{seeded.retrievers['hybrid-notes']}/execute",
        json={"inputs": {"query": query}},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert found.status_code == 200, found.text
    return str(found.json()["execution_id"])


def fact(page: Any, label: str) -> str:
    """A figure's value (without its note)."""
    dd = page.locator(".fact", has=page.locator("dt", has_text=label)).locator("dd")
    return str(dd.inner_text()).split("\n")[0].strip()


def test_tick_two_executions_and_compare_them(signed_in: Any, inspector_server: Inspector) -> None:
    older, newer = execute(inspector_server, "cats sleeping"), execute(inspector_server, "a sleeping kitten")
    page = signed_in
    page.reload()
    page.check(f'input[value="{newer}"]')
    page.check(f'input[value="{older}"]')
    page.click("#compare")
    page.wait_for_url(f"**/ui/compare?a={older}&b={newer}")
    assert page.title().startswith("Compare") and page.locator("h1").inner_text() == "Compare two executions"
    assert older in page.locator("#side-a").inner_text() and newer in page.locator("#side-b").inner_text()
    rows_a, rows_b = page.locator(".cmp-col-a .cmp-row"), page.locator(".cmp-col-b .cmp-row")
    assert rows_a.count() == rows_b.count() == 8
    lines = page.locator("svg.cmp-lines path.ln")  # a document in both: a line; in one only: a mark
    assert lines.count() > 0 and lines.count() + page.locator(".stub-dropped").count() == 8
    assert lines.count() + page.locator(".stub-new").count() == 8
    for label in ("Overlap@10", "Jaccard", "RBO", "Moved", "New", "Dropped", "Unchanged"):
        assert fact(page, label), label
    counts = {key: int(fact(page, label)) for key, label in (("moved", "Moved"), ("new", "New"),
              ("dropped", "Dropped"), ("same", "Unchanged"))}  # fmt: skip
    assert counts["moved"] + counts["same"] == lines.count()
    assert page.locator(".cmp-stages tbody tr").count() == 5  # search, recent, normalize, newest, top
    box = page.locator("svg.cmp-lines").bounding_box()
    first = rows_a.first.bounding_box()
    assert (
        box is not None and first is not None and abs(box["y"] - first["y"]) <= 1
    )  # the lines meet the rows

    doc = rows_a.first.get_attribute("data-doc")
    rows_a.first.hover()
    assert page.locator(f'#ranks .hl[data-doc="{doc}"]').count() >= 2  # its row in a and its line or mark
    page.click(".k-choices a[data-k='5']")
    page.wait_for_url("**k=5**")
    assert fact(page, "Overlap@5") and page.locator("svg .cut-line").count() == 1
    page.click(".cmp-filters a[data-show=changed]")
    page.wait_for_url("**show=changed**")
    shown = {s for s in page.locator(".cmp-row").evaluate_all("rows => rows.map(r => r.dataset.status)")}
    assert shown <= {"moved", "new", "dropped"}
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # no horizontal scrolling


def test_replay_now_lands_on_an_identical_comparison(signed_in: Any, inspector_server: Inspector) -> None:
    _, _, seeded = inspector_server
    original = seeded.executions["plain"]
    page = signed_in
    page.goto(f"/ui/executions/{original}")
    page.click("#replay")
    page.wait_for_url(f"**/ui/compare?a={original}&b=exec_*")
    replayed = page.url.rsplit("b=", 1)[1]
    assert replayed != original
    expect(page.locator("#identical")).to_be_visible()
    assert (
        fact(page, "Overlap@10") == "1.00"
        and fact(page, "Jaccard") == "1.00"
        and fact(page, "RBO") == "1.000"
    )
    assert fact(page, "Moved") == "0" and fact(page, "New") == "0" and fact(page, "Dropped") == "0"
    assert page.locator("svg.cmp-lines path.ln-same").count() == 8
    assert page.locator("svg.cmp-lines path.ln-up, svg.cmp-lines path.ln-down, svg .stub").count() == 0
    assert "Replay of" in page.locator("#side-b").inner_text()
    page.click(f'#side-b a[href="/ui/executions/{replayed}"]')
    page.wait_for_url(f"**/ui/executions/{replayed}")
    assert page.locator("#compare-original").is_visible()
