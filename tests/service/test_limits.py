"""The per-key token bucket (``service/limits.py``) on an injected clock, the rate notation, and key expiry."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from siftline.config import Settings
from siftline.errors import TooManyRequestsError, ValidationError
from siftline.models import UNLIMITED, ApiKey, Rate, utcnow
from siftline.service import keys
from siftline.service.limits import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def key(key_id: str = "key_a", rate: Rate | None = None, **fields: object) -> ApiKey:
    return ApiKey(key_id, "test", "sk_test_abcd", None, utcnow(), rate=rate, **fields)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> Clock:
    return Clock()


# -- the bucket ---------------------------------------------------------------------------------------


def test_a_full_bucket_lets_a_burst_through_then_refuses(clock: Clock) -> None:
    limiter = RateLimiter(clock=clock)
    rate = Rate(2.0, 5)
    assert [limiter.take("k", rate) for _ in range(5)] == [0.0] * 5
    assert limiter.take("k", rate) == pytest.approx(0.5)  # one token comes every 0.5 s


def test_the_bucket_refills_at_the_rate_and_never_past_the_burst(clock: Clock) -> None:
    limiter = RateLimiter(clock=clock)
    rate = Rate(2.0, 3)
    for _ in range(3):
        limiter.take("k", rate)
    clock.advance(0.5)
    assert limiter.take("k", rate) == 0.0  # one token back
    assert limiter.take("k", rate) == pytest.approx(0.5)
    clock.advance(3600)  # an hour idle: back to the burst, not 7,200 tokens
    assert [limiter.take("k", rate) for _ in range(3)] == [0.0] * 3
    assert limiter.take("k", rate) > 0


def test_a_refused_request_takes_no_token(clock: Clock) -> None:
    limiter = RateLimiter(clock=clock)
    rate = Rate(1.0, 1)
    limiter.take("k", rate)
    clock.advance(0.4)
    for _ in range(10):  # hammering while empty does not push the next token further away
        assert limiter.take("k", rate) == pytest.approx(0.6)
    clock.advance(0.6)
    assert limiter.take("k", rate) == 0.0


def test_keys_have_buckets_of_their_own(clock: Clock) -> None:
    limiter = RateLimiter(clock=clock)
    rate = Rate(1.0, 1)
    assert limiter.take("a", rate) == 0.0
    assert limiter.take("a", rate) > 0
    assert limiter.take("b", rate) == 0.0


@pytest.mark.parametrize(
    ("per_second", "elapsed", "retry_after"),
    [
        (1.0, 0.0, 1),
        (1.0, 0.999, 1),
        (0.5, 0.0, 2),
        (0.5, 0.1, 2),
        (0.5, 1.5, 1),
        (1 / 60, 0.0, 60),
        (4.0, 0.0, 1),
    ],
)
def test_retry_after_is_the_wait_rounded_up_to_whole_seconds_at_least_one(
    clock: Clock, per_second: float, elapsed: float, retry_after: int
) -> None:
    limiter = RateLimiter(clock=clock)
    limited = key(rate=Rate(per_second, 1))
    limiter.check(limited)
    clock.advance(elapsed)
    with pytest.raises(TooManyRequestsError) as refused:
        limiter.check(limited)
    assert refused.value.retry_after == retry_after
    assert refused.value.headers == {"Retry-After": str(retry_after)}
    assert refused.value.status == 429
    clock.advance(retry_after)  # waiting Retry-After is always enough
    limiter.check(limited)


def test_the_error_says_which_limit_and_when_to_retry(clock: Clock) -> None:
    limiter = RateLimiter(Rate(20.0, 20), clock=clock)
    own = key("key_own", Rate.parse("5/s"))
    for _ in range(5):
        limiter.check(own)
    with pytest.raises(TooManyRequestsError) as refused:
        limiter.check(own)
    message = refused.value.message
    assert "key_own" in message and "this API key's limit of 5/s (burst 5)" in message
    assert "Retry after 1 s" in message
    assert refused.value.details == {
        "key_id": "key_own",
        "limit": "5/s",
        "burst": 5,
        "limit_source": "key",
        "retry_after_seconds": 1,
    }

    defaulted = key("key_default")
    for _ in range(20):
        limiter.check(defaulted)
    with pytest.raises(TooManyRequestsError) as refused:
        limiter.check(defaulted)
    assert "default limit of 20/s (burst 20) (SIFTLINE_RATE_LIMIT)" in refused.value.message
    assert refused.value.details is not None and refused.value.details["limit_source"] == "server"


def test_which_limit_applies(clock: Clock) -> None:
    default = Rate(20.0, 20)
    assert RateLimiter(clock=clock).limit_of(key()) is None  # no default, no own limit: never limited
    assert RateLimiter(default, clock=clock).limit_of(key()) == (default, "server")
    assert RateLimiter(default, clock=clock).limit_of(key(rate=Rate(1.0, 2))) == (Rate(1.0, 2), "key")
    assert RateLimiter(default, clock=clock).limit_of(key(rate=UNLIMITED)) is None  # exempt
    exempt = RateLimiter(default, clock=clock)
    for _ in range(1000):
        exempt.check(key(rate=UNLIMITED))
    assert len(exempt) == 0  # an unlimited key never gets a bucket


def test_memory_is_bounded_full_buckets_go_first(clock: Clock) -> None:
    limiter = RateLimiter(clock=clock, max_buckets=100)
    rate = Rate(1.0, 2)
    busy = [f"busy{i}" for i in range(10)]
    for key_id in busy:  # emptied: state worth keeping
        limiter.take(key_id, rate)
        limiter.take(key_id, rate)
    for i in range(90):
        limiter.take(f"idle{i}", rate)
    clock.advance(1.0)  # the idle ones (one token taken) are full again; the busy ones are not
    for i in range(85):
        limiter.take(f"new{i}", rate)
    assert len(limiter) == 95
    # the busy keys outlived the idle ones: one token back since, not reset to a full bucket of two
    assert limiter.take("busy0", rate) == 0.0 and limiter.take("busy0", rate) > 0
    for i in range(1000):  # no bucket is full: the oldest go
        limiter.take(f"more{i}", rate)
        assert len(limiter) <= 100


def test_a_refused_key_is_refused_again_by_its_hash_until_its_next_token(clock: Clock) -> None:
    limiter = RateLimiter(clock=clock)
    limited = key(rate=Rate(0.5, 1))
    limiter.check_refused("hash-a")  # nothing remembered: no error
    limiter.check(limited, "hash-a")
    with pytest.raises(TooManyRequestsError):
        limiter.check(limited, "hash-a")
    clock.advance(1.0)
    with pytest.raises(TooManyRequestsError) as early:  # without the key's record: by its hash alone
        limiter.check_refused("hash-a")
    assert early.value.retry_after == 1 and early.value.details["key_id"] == "key_a"  # type: ignore[index]
    limiter.check_refused("hash-b")  # another key is not concerned
    clock.advance(1.0)  # the token is back: the hash is forgotten and the request goes through
    limiter.check_refused("hash-a")
    limiter.check(limited, "hash-a")


def test_remembered_refusals_are_bounded(clock: Clock) -> None:
    limiter = RateLimiter(clock=clock, max_buckets=10)
    for i in range(100):
        limited = key(f"key_{i}", Rate(1 / 3600, 1))
        limiter.check(limited, f"hash-{i}")
        with pytest.raises(TooManyRequestsError):
            limiter.check(limited, f"hash-{i}")
        assert len(limiter._refused) <= 10 and len(limiter) <= 10


def test_a_check_costs_microseconds() -> None:
    limiter = RateLimiter()
    limited = key(rate=Rate(1e9, 10**9))
    n = 20_000
    started = time.perf_counter()
    for _ in range(n):
        limiter.check(limited)
    per_check = (time.perf_counter() - started) / n
    assert per_check < 50e-6, f"{per_check * 1e6:.1f} µs per check"  # measured ≈0.7 µs; generous for CI


# -- the notation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "burst", "expected", "shown"),
    [
        ("20/s", None, Rate(20.0, 20), "20/s"),
        ("10/s", 3, Rate(10.0, 3), "10/s"),
        ("600/m", None, Rate(10.0, 600), "10/s"),
        ("30/min", None, Rate(0.5, 30), "30/m"),
        ("1000/h", None, Rate(1000 / 3600, 1000), "1000/h"),
        ("0.5/s", None, Rate(0.5, 1), "30/m"),
        (" 5 / second ", None, Rate(5.0, 5), "5/s"),
        ("unlimited", None, UNLIMITED, "unlimited"),
    ],
)
def test_rates_parse_and_print(text: str, burst: int | None, expected: Rate, shown: str) -> None:
    rate = Rate.parse(text, burst)
    assert rate.per_second == pytest.approx(expected.per_second) and rate.burst == expected.burst
    assert str(rate) == shown


@pytest.mark.parametrize(("text", "burst"), [("fast", None), ("0/s", None), ("10", None), ("10/d", None),
                                             ("10/s", 0), ("unlimited", 5)])  # fmt: skip
def test_bad_rates_say_what_is_expected(text: str, burst: int | None) -> None:
    with pytest.raises(ValueError):
        Rate.parse(text, burst)


def test_the_default_comes_from_settings(tmp_path: object) -> None:
    assert Settings().default_rate is None  # off unless set
    assert Settings(rate_limit="20/s").default_rate == Rate(20.0, 20)
    assert Settings(rate_limit="20/s", rate_burst=40).default_rate == Rate(20.0, 40)
    assert Settings(rate_limit="off").default_rate is None


# -- expiry ---------------------------------------------------------------------------------------

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", NOW + timedelta(days=30)),
        ("12h", NOW + timedelta(hours=12)),
        ("90m", NOW + timedelta(minutes=90)),
        ("2w", NOW + timedelta(weeks=2)),
        ("2027-01-31T00:00:00Z", datetime(2027, 1, 31, tzinfo=UTC)),
        ("2027-01-31T01:00:00+01:00", datetime(2027, 1, 31, tzinfo=UTC)),
        ("2027-01-31", datetime(2027, 1, 31, tzinfo=UTC)),
        ("2027-01-31T00:00:00", datetime(2027, 1, 31, tzinfo=UTC)),  # no offset: UTC
    ],
)
def test_expiry_from_a_time_or_a_duration(text: str, expected: datetime) -> None:
    assert keys.parse_expiry(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "30x", "2020-01-01T00:00:00Z", "0d"])
def test_an_expiry_that_is_not_a_future_time_is_refused(text: str) -> None:
    with pytest.raises(ValidationError) as refused:
        keys.parse_expiry(text, NOW)
    assert "expires" in refused.value.message


def test_an_expired_key_is_refused_with_when(tmp_path: object) -> None:
    from siftline.errors import UnauthorizedError

    class Keys:
        def __init__(self, found: ApiKey) -> None:
            self.found = found

        def key_by_hash(self, _: str) -> ApiKey:
            return self.found

    past = datetime(2026, 1, 31, tzinfo=UTC)
    with pytest.raises(UnauthorizedError) as refused:
        keys.authenticate(Keys(key(expires_at=past)), "Bearer sk_test_whatever_long_enough")  # type: ignore[arg-type]
    assert refused.value.message.startswith("This API key expired at 2026-01-31T00:00:00Z")
    future = utcnow() + timedelta(days=1)
    found = keys.authenticate(Keys(key(expires_at=future)), "Bearer sk_test_whatever_long_enough")  # type: ignore[arg-type]
    assert found.expires_at == future
