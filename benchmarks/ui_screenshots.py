"""Screenshots of the execution inspector (sign-in, executions list, one execution) into docs/img/.

A real `siftline serve` on a fresh data directory, executions made over HTTP, and Debian's
chromium-headless-shell driven by Playwright (nothing is downloaded):

    .venv/bin/python benchmarks/ui_screenshots.py [--out docs/img] [--chromium /usr/lib/chromium/chromium-headless-shell]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

from siftline.testing.inspector_data import seed
from siftline.testing.server import start_with_key

CHROMIUM = "/usr/lib/chromium/chromium-headless-shell"
WIDTH = 1280


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
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    for name in ("ui-login", "ui-executions", "ui-execution", "ui-execution-budget"):
        print(args.out / f"{name}.png")


if __name__ == "__main__":
    main()
