"""Screenshots of the execution inspector (sign-in, executions list, one execution, two compared) into
docs/img/.

A real `siftline serve` on a fresh data directory, executions made over HTTP, and Debian's
chromium-headless-shell driven by Playwright (nothing is downloaded). For the comparison, an execution is
replayed after writes (one document's year changed so that it moves, one deleted, one added):

    .venv/bin/python benchmarks/ui_screenshots.py [--out docs/img] [--chromium /usr/lib/chromium/chromium-headless-shell]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

from siftline.testing.inspector_data import Seeded, seed
from siftline.testing.server import start_with_key

CHROMIUM = "/usr/lib/chromium/chromium-headless-shell"
WIDTH = 1280
SHOTS = ("ui-login", "ui-executions", "ui-execution", "ui-execution-budget", "ui-compare")


def changed_replay(http: httpx.Client, seeded: Seeded) -> tuple[str, str]:
    """An execution of "interest rates", writes that change its results, and its replay: (a, b)."""
    docs = "/v1/collections/notes/documents"
    before = http.post(
        f"/v1/retrievers/{seeded.retrievers['hybrid-notes']}/execute",
        json={"inputs": {"query": "interest rates"}},
    ).json()
    returned = [d["document_id"] for d in before["documents"]]
    http.patch(
        f"{docs}/{returned[-1]}", json={"year": 2026}
    ).raise_for_status()  # newest first: moves to the top
    http.delete(f"{docs}/{returned[2]}").raise_for_status()
    new = {"document_id": "fin-new", "title": "Interest rates held steady", "text": "interest rates held steady",
           "category": "finance", "year": 2025}  # fmt: skip
    http.post(docs, json=new).raise_for_status()
    after = http.post(f"/v1/retrievers/executions/{before['execution_id']}/replay").json()
    return before["execution_id"], after["execution_id"]


def sign_in(page: Page, url: str, key: str) -> None:
    page.goto(f"{url}/ui/login")
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/ui/")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--chromium", default=CHROMIUM)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="siftline-shots-"))
    server, key = start_with_key(tmp / "data")
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120
        ) as http:
            seeded = seed(http)
            for query in ("bone density", "a dog and a ball", "saving money", "catalyst"):
                http.post(
                    f"/v1/retrievers/{seeded.retrievers['hybrid-notes']}/execute",
                    json={"inputs": {"query": query}},
                )
            a, b = changed_replay(http, seeded)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium)
            page = browser.new_page(viewport={"width": WIDTH, "height": 800})
            page.goto(f"{server.url}/ui/login")
            page.screenshot(path=str(args.out / "ui-login.png"))
            sign_in(page, server.url, key)
            page.screenshot(path=str(args.out / "ui-executions.png"), full_page=True)
            page.goto(f"{server.url}/ui/executions/{seeded.executions['explained']}")
            page.click(".wf-row .toggle >> nth=0")
            page.click("tbody.result .toggle >> nth=0")
            page.screenshot(path=str(args.out / "ui-execution.png"), full_page=True)
            page.goto(f"{server.url}/ui/executions/{seeded.executions['budget']}")
            page.screenshot(path=str(args.out / "ui-execution-budget.png"), full_page=True)
            page.goto(f"{server.url}/ui/compare?a={a}&b={b}")
            page.screenshot(path=str(args.out / "ui-compare.png"), full_page=True)
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    for name in SHOTS:
        print(args.out / f"{name}.png")


if __name__ == "__main__":
    main()
