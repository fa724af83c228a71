"""Browser tests of the inspector: a real `siftline serve` process and Debian's chromium-headless-shell
driven by Playwright's sync API (nothing is downloaded: `playwright install` is never run).

Without the browser (or the playwright package) the tests are skipped with the reason, except in CI
(CI=true), where they must run: there a missing browser fails them. Every page may talk to the server
only: a request to any other host fails the test that made it, as does a script error or a
Content-Security-Policy violation.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from siftline.testing.inspector_data import Seeded, seed
from siftline.testing.server import Server, start_with_key

CANDIDATES = ("/usr/lib/chromium/chromium-headless-shell", "/usr/bin/chromium-headless-shell")
INSTALL = "apt-get install -y chromium-headless-shell (and pip install playwright, in the dev extras)"


def chromium_path() -> str | None:
    """SIFTLINE_CHROMIUM, else the Debian package's binary."""
    configured = os.environ.get("SIFTLINE_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    found = next((c for c in CANDIDATES if Path(c).exists()), None)
    return found or shutil.which("chromium-headless-shell")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: CI must run the browser tests ({INSTALL})")
    pytest.skip(f"{reason}; install it to run the browser tests: {INSTALL}")


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless browser for the session."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    path = chromium_path()
    if path is None:
        _unavailable("chromium-headless-shell is not installed")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def inspector_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, Seeded]]:
    """A real server (the siftline CLI with the test stage that waits, so runs can be watched), a key, and
    executions of every kind."""
    server, key = start_with_key(tmp_path_factory.mktemp("ui") / "data", module="siftline.testing.slow_stage")
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120
        ) as http:
            seeded = seed(http, slow=True)
        yield server, key, seeded
    finally:
        server.stop()


class Guard:
    """What a page did that it must not: requests to other hosts, script errors, CSP violations."""

    def __init__(self, server_url: str) -> None:
        self.origin = urlsplit(server_url).netloc
        self.problems: list[str] = []

    def route(self, route: Any) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).netloc == self.origin:
            route.continue_()
        else:
            self.problems.append(f"request to another host: {url}")
            route.abort()

    def console(self, message: Any) -> None:
        if message.type == "error" and re.search(r"Content Security Policy|Refused to", message.text):
            self.problems.append(f"console: {message.text}")

    def page_error(self, error: Any) -> None:
        self.problems.append(f"script error: {error}")


@pytest.fixture
def page(chromium: Any, inspector_server: tuple[Server, str, Seeded]) -> Iterator[Any]:
    """A fresh browser context (no cookies) whose page may only talk to the server."""
    server, _, _ = inspector_server
    guard = Guard(server.url)
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, base_url=server.url)
    context.route("**/*", guard.route)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("console", guard.console)
    page.on("pageerror", guard.page_error)
    yield page
    context.close()
    assert guard.problems == [], "the page did what it must not"


@pytest.fixture
def signed_in(page: Any, inspector_server: tuple[Server, str, Seeded]) -> Any:
    """The page, signed in with the server's key to namespace default, on the executions list."""
    _, key, _ = inspector_server
    page.goto("/ui/login")
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/")
    return page
