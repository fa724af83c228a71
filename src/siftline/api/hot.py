"""The execute routes without FastAPI's per-request machinery.

``POST /v1/retrievers/execute`` and ``POST /v1/retrievers/{retriever_id}/execute`` are what a
search-heavy client calls over and over. FastAPI spends about 1.5 ms of every such request (2 cores;
``docs/SPEED.md``) matching the path against every route and solving the dependency tree (key,
namespace, query flags, body) — more than the HNSW search itself — and all of it holds the GIL on the
event loop. ``HotPaths`` answers these two routes itself, calling the same dependency functions and the
same route functions, so there is one implementation of what they do:

- only the case that cannot differ is answered here: a JSON body that parses and validates, a key and
  namespace that resolve, query flags that parse, no streaming. Anything else — a missing key, bad JSON,
  a validation error, ``stream: true``, another content type — is handed to FastAPI with the body
  replayed, so every error keeps FastAPI's handling and envelope;
- but a key over its rate limit is refused here (429 through the application's handler): hammering
  costs no trip through FastAPI, and each request counts once (``deps.api_key`` marks the scope);
- an error raised by the route function itself (after the execution started) goes through the
  application's own exception handlers.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from siftline.api import deps
from siftline.api.routes import retrievers as routes
from siftline.api.schemas.retrievers import AdhocExecuteBody, ExecuteBody
from siftline.errors import SiftlineError, TooManyRequestsError

_SAVED = re.compile(r"/v1/retrievers/([^/]+)/execute")
# A run of 19+ digits that does not follow a digit or a decimal point: maybe an integer past 64 bits, which
# orjson reads as a float and json keeps exact (a float's long fraction follows its point: not matched).
_LONG_NUMBER = re.compile(rb"(?<![\d.])\d{19}")
_BOOL = TypeAdapter(bool)


class _Declined(Exception):
    """This request takes FastAPI's path."""


def _parse(body: bytes) -> Any:
    """The body as FastAPI's ``json.loads`` reads it; orjson when the result cannot differ."""
    if not _LONG_NUMBER.search(body):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # NaN, lone surrogates, other encodings: the standard library's verdict
    try:
        return json.loads(body)
    except ValueError as exc:
        raise _Declined from exc


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return False
    try:
        return _BOOL.validate_python(value)
    except PydanticValidationError as exc:
        raise _Declined from exc


def _model(cls: type[BaseModel], data: Any) -> Any:
    try:
        return cls.model_validate(data)
    except PydanticValidationError as exc:
        raise _Declined from exc


class HotPaths:
    answered = 0  # requests answered here since start (the rest went to FastAPI): for tests and debugging

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._route(scope)
        if route is None:
            await self.app(scope, receive, send)
            return
        content_type = _header(scope, b"content-type")
        if content_type is None or content_type.split(b";")[0].strip().lower() != b"application/json":
            await self.app(scope, receive, send)
            return
        try:
            body, more = await _read(receive)
        except SiftlineError as exc:  # over the size limit (BodyLimit, outside, counts what is read)
            await (await _handled(scope, Request(scope), exc))(scope, receive, send)
            return
        if more:  # the client went away mid-body: FastAPI's handling
            await self.app(scope, _replay(body, receive), send)
            return
        request = Request(scope, _replay(body, receive))
        try:
            call = await self._prepare(request, route, body)
        except _Declined:
            await self.app(scope, _replay(body, receive), send)
            return
        except TooManyRequestsError as exc:  # the key is over its rate limit: refused here, at little cost
            await (await _handled(scope, request, exc))(scope, receive, send)
            return
        HotPaths.answered += 1
        try:
            response = await run_in_threadpool(call)
        except Exception as exc:  # rendered by the application's own handlers
            response = await _handled(scope, request, exc)
        await response(scope, receive, send)

    @staticmethod
    def _route(scope: Scope) -> str | None:
        """'' for the ad hoc route, the retriever id for a saved one, None for any other request."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            return None
        path: str = scope["path"]
        if path == "/v1/retrievers/execute":
            return ""
        saved = _SAVED.fullmatch(path)
        return saved.group(1) if saved else None

    async def _prepare(self, request: Request, retriever_id: str, body: bytes) -> Any:
        svc = await deps.services(request)
        try:
            key = await deps.api_key(request, svc)
            ns = await deps.namespace(
                svc, key, request.headers.get("x-namespace"), request.query_params.get("namespace")
            )
        except TooManyRequestsError:
            raise
        except SiftlineError as exc:
            raise _Declined from exc
        skip_cache, return_vectors = _flag(request, "skip_cache"), _flag(request, "return_vectors")
        data = _parse(body)
        if not retriever_id:
            adhoc = _model(AdhocExecuteBody, data)
            if adhoc.stream:
                raise _Declined
            return lambda: routes.execute_adhoc(adhoc, svc, ns, request, skip_cache, return_vectors)
        saved = _model(ExecuteBody, data)
        if saved.stream:
            raise _Declined
        return lambda: routes.execute_retriever(
            retriever_id, saved, svc, ns, request, skip_cache, return_vectors
        )


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def _read(receive: Receive) -> tuple[bytes, bool]:
    """The whole body, and whether it ended early (a disconnect)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _handled(scope: Scope, request: Request, exc: Exception) -> Any:
    handlers = scope["app"].exception_handlers
    for cls in type(exc).__mro__:
        if cls in handlers:
            return await handlers[cls](request, exc)
    raise exc
