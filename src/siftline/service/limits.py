"""Per-key rate limits: a token bucket per API key, kept in this server's memory.

A key's bucket holds at most ``burst`` tokens and gains ``per_second`` of them each second; a request takes
one, and a request that finds less than one is refused (429) with the seconds until one is there
(``Retry-After``, rounded up). The limit is the key's own (``siftline keys create --rate``), else the
server's default (``SIFTLINE_RATE_LIMIT``), else none; a key created with ``--rate unlimited`` has none
whatever the default.

Buckets are per server: several servers over one PostgreSQL each enforce the whole limit on the requests
they see (a key may get up to N times its rate over N servers). A check is a dict lookup and a few float
operations under a lock (≈0.7 µs; with the key's hash and the early refusal below, ≈2 µs a request);
memory is bounded by ``max_buckets`` (100,000 buckets ≈ 28 MB): past it, buckets that have refilled
(which carry no state) are dropped first, then the oldest.

A refusal is remembered by the key's hash until its next token comes (``check_refused``), so a client
hammering over its limit is refused before its key is read from storage (on PostgreSQL, a round trip).
Until then a key revoked meanwhile still gets 429, not 401 — it is refused either way.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from siftline.errors import TooManyRequestsError
from siftline.models import ApiKey, Rate
from siftline.service.keys import when

MAX_BUCKETS = 100_000


class RateLimiter:
    """Token buckets by key id. ``clock`` (monotonic seconds) is injectable for tests."""

    def __init__(
        self,
        default: Rate | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        self.default = None if default is None or default.unlimited else default
        self._clock = clock
        self._max = max(1, max_buckets)
        self._lock = threading.Lock()
        # key id -> [tokens, last update (clock), per_second, burst]
        self._buckets: dict[str, list[float]] = {}
        # key hash -> (clock time its next token comes, the key, its rate, where the rate comes from)
        self._refused: dict[str, tuple[float, ApiKey, Rate, str]] = {}

    def limit_of(self, key: ApiKey) -> tuple[Rate, str] | None:
        """The rate that applies to ``key`` and where it comes from (``key`` or ``server``), or None."""
        if key.rate is None:
            return (self.default, "server") if self.default is not None else None
        return None if key.rate.unlimited else (key.rate, "key")

    def take(self, key_id: str, rate: Rate) -> float:
        """Take one token from the key's bucket: 0.0 when there was one, else the seconds until there is."""
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key_id)
            if bucket is None:
                if len(self._buckets) >= self._max:
                    self._evict(now)
                self._buckets[key_id] = [rate.burst - 1.0, now, rate.per_second, float(rate.burst)]
                return 0.0
            tokens = min(float(rate.burst), bucket[0] + (now - bucket[1]) * rate.per_second)
            bucket[1], bucket[2], bucket[3] = now, rate.per_second, rate.burst
            if tokens >= 1.0:
                bucket[0] = tokens - 1.0
                return 0.0
            bucket[0] = tokens
            return (1.0 - tokens) / rate.per_second

    def check(self, key: ApiKey, key_hash: str | None = None) -> None:
        """Count one request of ``key``; TooManyRequestsError (429, Retry-After) when it is over its limit.
        With ``key_hash``, a refusal is remembered until the next token comes (:meth:`check_refused`)."""
        limit = self.limit_of(key)
        if limit is None:
            return
        rate, source = limit
        wait = self.take(key.key_id, rate)
        if wait > 0:
            if key_hash is not None:
                with self._lock:
                    if len(self._refused) >= self._max:
                        self._forget_refusals(self._clock())
                    self._refused[key_hash] = (self._clock() + wait, key, rate, source)
            raise over_limit(key, rate, source, wait)

    def check_refused(self, key_hash: str) -> None:
        """429 again for the key with this hash if it was refused and its next token has not come yet: a
        refusal that needs no storage read. (Its bucket is as it was: a refused request takes nothing.)"""
        if key_hash not in self._refused:  # the common case: one dict lookup, no lock
            return
        with self._lock:
            entry = self._refused.get(key_hash)
            now = self._clock()
            if entry is None or entry[0] <= now:
                self._refused.pop(key_hash, None)
                return
        ready, key, rate, source = entry
        raise over_limit(key, rate, source, ready - now)

    def __len__(self) -> int:
        return len(self._buckets)

    def _evict(self, now: float) -> None:
        """Make room (under the lock): drop the buckets that are full again (recreated full, nothing is
        lost); if that frees less than a tenth, drop the oldest created as well."""
        for key_id, (tokens, at, per_second, burst) in list(self._buckets.items()):
            if tokens + (now - at) * per_second >= burst:
                del self._buckets[key_id]
        excess = len(self._buckets) - (self._max - max(1, self._max // 10))
        for key_id in list(self._buckets)[: max(0, excess)]:
            del self._buckets[key_id]

    def _forget_refusals(self, now: float) -> None:
        """Make room (under the lock): refusals whose token has come go; then the oldest, if need be (a
        forgotten refusal only means the next request reads the key before it is refused)."""
        for key_hash, (ready, *_) in list(self._refused.items()):
            if ready <= now:
                del self._refused[key_hash]
        for key_hash in list(self._refused)[: max(0, len(self._refused) - self._max // 2)]:
            del self._refused[key_hash]


def over_limit(key: ApiKey, rate: Rate, source: str, wait: float) -> TooManyRequestsError:
    """The 429 for ``key``: which limit, and when to retry (``Retry-After``: ``wait`` rounded up)."""
    retry_after = max(1, math.ceil(wait))
    at = when(datetime.now(UTC) + timedelta(seconds=retry_after))
    which = (
        f"this API key's limit of {rate.describe()}"
        if source == "key"
        else f"the server's default limit of {rate.describe()} (SIFTLINE_RATE_LIMIT)"
    )
    return TooManyRequestsError(
        f"Too many requests with API key {key.key_id}: over {which}. Retry after {retry_after} s ({at}).",
        {
            "key_id": key.key_id,
            "limit": str(rate),
            "burst": rate.burst,
            "limit_source": source,
            "retry_after_seconds": retry_after,
        },
        retry_after=retry_after,
    )
