"""Request bodies read by hand: large JSON batches (orjson) and streamed NDJSON, plus the size limit.

``BodyLimit`` is a plain ASGI middleware (no per-request task as with ``@app.middleware``): a body
over ``max_request_bytes`` is refused with the 400 envelope, whether its size is announced in
``Content-Length`` or only seen while it streams. NDJSON uploads (``application/x-ndjson``) are exempt:
they are read a line at a time and written in chunks, so their memory stays bounded at any size.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from siftline.errors import BadRequestError, SiftlineError, ValidationError

NDJSON = "application/x-ndjson"


def _too_large(size: int, limit: int) -> BadRequestError:
    return BadRequestError(
        f"The request body is {size:,} bytes or more; the limit is {limit:,} (SIFTLINE_MAX_REQUEST_BYTES). "
        "Split the documents into several batches, or stream them as NDJSON (Content-Type: "
        f"{NDJSON}) to POST …/documents/batch.",
        {"limit_bytes": limit},
    )


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if headers.get(b"content-type", b"").startswith(NDJSON.encode()):
            await self.app(scope, receive, send)
            return
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            error = _too_large(int(length), self.limit)
            body = orjson.dumps(error.envelope())
            start = {"type": "http.response.start", "status": error.status,
                     "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}  # fmt: skip
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _too_large(seen, self.limit)
            return message

        await self.app(scope, counted, send)


async def json_body(request: Request) -> Any:
    """The request body parsed with orjson (large batches parse several times faster than with json)."""
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(
            f"Request validation failed: body: the body is not valid JSON ({exc})",
            [{"loc": ["body"], "msg": f"JSON decode error: {exc}", "type": "json_invalid"}],
        ) from None


def is_ndjson(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith(NDJSON)


async def _lines(request: Request) -> AsyncIterator[tuple[int, bytes]]:
    pending = b""
    number = 0
    async for chunk in request.stream():
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            number += 1
            if line.strip():
                yield number, line
    if pending.strip():
        yield number + 1, pending


async def write_ndjson(
    request: Request,
    write: Callable[[list[Any]], list[str]],
    chunk: int,
    run: Callable[..., Awaitable[list[str]]] = run_in_threadpool,
) -> list[str]:
    """Parse one document per line and ``write`` them ``chunk`` at a time (each chunk one transaction).

    A bad line or a refused chunk stops the upload with its error; the chunks before it stay written,
    and the error's details say how many documents that was (``written``) and from which line on
    nothing was (``first_line_not_written``).
    """
    written: list[str] = []
    docs: list[Any] = []
    first_line = 1

    async def flush() -> None:
        nonlocal docs
        try:
            written.extend(await run(write, docs))
        except SiftlineError as exc:
            raise _partial(exc, len(written), first_line) from None
        docs = []

    async for number, line in _lines(request):
        if not docs:
            first_line = number
        try:
            docs.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            error = ValidationError.at(
                ["body", number], f"line {number} is not valid JSON ({exc})", "json_invalid"
            )
            raise _partial(error, len(written), first_line) from None
        if len(docs) >= chunk:
            await flush()
    if docs:
        await flush()
    if not written:
        raise ValidationError.at(["body"], "the NDJSON body holds no documents (one JSON object per line)")
    return written


def _partial(error: SiftlineError, written: int, first_line: int) -> SiftlineError:
    error.message = (
        f"{error.message} (NDJSON upload: the {written:,} documents before line {first_line} were written; "
        f"nothing from line {first_line} on was)"
    )
    error.details = {**(error.details or {}), "written": written, "first_line_not_written": first_line}
    return error
