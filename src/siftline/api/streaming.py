"""Server-Sent Events for ``stream: true`` executions.

The execution runs on a worker thread and hands its events to the response through a queue:
``stage_start``, ``stage_complete``, ``stage_error`` per stage, then ``execution_complete`` (the full
execute response) or ``execution_error``. A request that fails before any stage starts (bad input)
gets the ordinary error envelope instead of a stream.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from fastapi.responses import JSONResponse, StreamingResponse
from starlette.responses import Response

from siftline.errors import InternalServerError, SiftlineError

log = logging.getLogger("siftline.stream")
Emit = Callable[[str, dict[str, Any]], None]
_DONE = ("__done__", None)


def _sse(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, default=str, ensure_ascii=False)}\n\n"


def stream_execution(run: Callable[[Emit], dict[str, Any]]) -> Response:
    events: queue.Queue[tuple[str, Any]] = queue.Queue()

    def work() -> None:
        try:
            result = run(lambda kind, data: events.put((kind, data)))
            final = "execution_complete" if result.get("status") == "completed" else "execution_error"
            events.put((final, result))
        except SiftlineError as exc:
            events.put(("__error__", exc))
        except Exception:
            log.exception("streamed execution failed")
            events.put(
                ("__error__", InternalServerError("Internal server error; the server log has the details."))
            )
        events.put(_DONE)

    threading.Thread(target=work, name="siftline-stream", daemon=True).start()
    first = events.get()
    if first[0] == "__error__":
        error: SiftlineError = first[1]
        return JSONResponse(error.envelope(), status_code=error.status)

    def body() -> Iterator[str]:
        item = first
        while item != _DONE:
            kind, data = item
            if kind == "__error__":
                yield _sse("execution_error", data.envelope())
            else:
                yield _sse(kind, data)
            item = events.get()

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
