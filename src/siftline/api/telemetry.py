"""HTTP metrics: a plain ASGI middleware counting and timing every request by its route template.

The label is the matched route's path as declared (``/v1/retrievers/{retriever_id}/execute``), never the
raw path with its ids, so the label set stays bounded; a request no route matches is ``unmatched``.
Starlette's router puts the matched route in ``scope["route"]``. The two execute routes answered by
``HotPaths`` never reach the router; for those (and for requests refused before routing, e.g. over the
size limit) the route is found by matching the application's routes once, and the hot routes' templates
are kept (two of them), so a hot request pays no route matching for its metrics.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from siftline.api.hot import HotPaths
from siftline.service.telemetry import UNMATCHED, Telemetry


class HttpMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._hot: dict[bool, str] = {}  # saved? → the template of that execute route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server sends when the application raises before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            telemetry = _telemetry(scope)
            if telemetry is not None:
                telemetry.observe_request(
                    scope["method"], self._template(scope), status, time.perf_counter() - started
                )

    def _template(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is not None:
            return str(getattr(route, "path", UNMATCHED))
        hot = HotPaths._route(scope)
        if hot is None:
            return _matched(scope)
        saved = hot != ""
        if saved not in self._hot:
            self._hot[saved] = _matched(scope)
        return self._hot[saved]


def _matched(scope: Scope) -> str:
    """The path of the first route matching ``scope`` fully, in the order the router tries them."""
    app = scope.get("app")
    for route in _flat(getattr(getattr(app, "router", None), "routes", ())):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(getattr(route, "path", UNMATCHED))
    return UNMATCHED


def _flat(routes: Iterable[Any]) -> Iterator[Any]:
    """The routes, with those of each included router in its place: FastAPI from 0.16x keeps an included
    router as one entry (its ``original_router``, whose routes carry the router's prefix; the app includes
    its routers without another prefix), earlier versions copy its routes into the app's list."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _flat(inner.routes)
        else:
            yield route


def _telemetry(scope: Scope) -> Telemetry | None:
    app: Any = scope.get("app")
    services = getattr(getattr(app, "state", None), "services", None)
    return getattr(services, "telemetry", None)
