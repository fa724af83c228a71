"""Work a stage runs concurrently: a feature_search's legs (and their query embeddings).

The heavy parts of a leg — the query embedding (onnxruntime), HNSW and exact vector search (faiss,
numpy) and the BM25 postings work (numpy) — release the GIL, so the legs of a hybrid search overlap:
the BM25 leg runs while the dense leg's query is embedded. One pool for the process; a request's
last leg runs in the request's own thread, so a single search never waits on the pool.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
WORKERS = max(4, 2 * (os.cpu_count() or 1))


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="siftline-leg")
    return _pool


def run_all(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Each call's result, in order; they run concurrently. The first failure (by position) is raised
    once every call has finished, as if they had run one after the other up to it."""
    if len(calls) <= 1:
        return [call() for call in calls]
    futures: list[Future[T]] = [_executor().submit(call) for call in calls[:-1]]
    last: Future[T] = Future()
    try:
        last.set_result(calls[-1]())
    except BaseException as exc:  # collected like the others, raised in order below
        last.set_exception(exc)
    return [f.result() for f in [*futures, last]]


class Once:
    """A value computed by the first thread that asks for it; the others wait for that result."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[object, Future[object]] = {}

    def get(self, key: object, compute: Callable[[], T]) -> T:
        with self._lock:
            future = self._futures.get(key)
            owner = future is None
            if future is None:
                future = self._futures[key] = Future()
        if owner:
            try:
                future.set_result(compute())
            except BaseException as exc:
                future.set_exception(exc)
        return future.result()  # type: ignore[return-value]
