"""The shared limiter and circuit breaker on real Redis (one process standing in for many:
every call goes through the same Lua scripts and keys a second worker would use)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis

from agentqueue.ratelimit.breaker import CircuitBreaker
from agentqueue.ratelimit.limiter import SharedRateLimiter
from agentqueue.ratelimit.limits_file import RateLimitTable, _Limit


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def _limiter(client: redis.Redis, **limit: int) -> SharedRateLimiter:
    table = RateLimitTable([_Limit(provider="openai", model="m", **limit)])
    return SharedRateLimiter(client, table, key_ids={"openai": "k1"}, window_s=0.05)


def test_calls_are_paced_to_the_limit_and_a_long_wait_is_refused(client: redis.Redis) -> None:
    """At 600 RPM (one call per 100 ms) ten calls take about 0.9 s, and a caller that may
    wait only 10 ms behind a full limit gets None instead of sleeping."""
    limiter = _limiter(client, rpm=600)
    key = limiter.key_for("openai", "m")
    started = time.monotonic()
    permits = [limiter.acquire(key, 1, priority="normal", max_wait_s=5) for _ in range(10)]
    elapsed = time.monotonic() - started

    assert all(p is not None for p in permits)
    assert 0.8 <= elapsed < 2.0, elapsed
    assert limiter.acquire(key, 1, priority="normal", max_wait_s=0.01) is None


def test_waiters_go_in_priority_order(client: redis.Redis) -> None:
    """Given a full limit with a low job waiting, a critical job arriving later goes first."""
    limiter = _limiter(client, rpm=120)  # one call per 500 ms
    key = limiter.key_for("openai", "m")
    assert limiter.acquire(key, 1, priority="normal", max_wait_s=1) is not None
    order: list[str] = []

    def wait(priority: str) -> None:
        assert limiter.acquire(key, 1, priority=priority, max_wait_s=5) is not None
        order.append(priority)

    low = threading.Thread(target=wait, args=("low",))
    low.start()
    time.sleep(0.1)
    critical = threading.Thread(target=wait, args=("critical",))
    critical.start()
    low.join()
    critical.join()
    assert order == ["critical", "low"]


def test_token_cost_is_corrected_after_the_call(client: redis.Redis) -> None:
    """At 60,000 TPM a 900-token bound takes 0.9 s of budget, so an 800-token call would wait
    0.9 s; corrected to the 100 tokens really used, it waits only about 0.1 s."""
    limiter = _limiter(client, tpm=60_000)
    key = limiter.key_for("openai", "m")
    permit = limiter.acquire(key, 900, priority="normal", max_wait_s=1)
    assert permit is not None
    assert limiter.acquire(key, 800, priority="normal", max_wait_s=0.05) is None
    limiter.correct(permit, 100)
    assert limiter.acquire(key, 800, priority="normal", max_wait_s=0.4) is not None


def test_limits_and_waits_are_learned_from_replies(client: redis.Redis) -> None:
    """With nothing configured, calls are unlimited until a reply announces 60 RPM; then a
    second call within the second waits. A 429's Retry-After pauses every caller."""
    limiter = SharedRateLimiter(client, RateLimitTable(), key_ids={})
    key = limiter.key_for("openai", "m")
    assert all(limiter.acquire(key, 1, priority="normal", max_wait_s=0) for _ in range(5))
    limiter.observe(key, 200, {"x-ratelimit-limit-requests": "60"})
    other = SharedRateLimiter(client, RateLimitTable(), key_ids={})  # another worker
    assert other.acquire(key, 1, priority="normal", max_wait_s=0.1) is not None
    assert other.acquire(key, 1, priority="normal", max_wait_s=0.1) is None

    paused = other.key_for("openai", "n")
    limiter.observe(paused, 429, {"retry-after-ms": "300"})
    started = time.monotonic()
    assert other.acquire(paused, 1, priority="critical", max_wait_s=2) is not None
    assert time.monotonic() - started >= 0.25


def test_breaker_opens_cools_probes_once_and_closes(client: redis.Redis) -> None:
    breaker = CircuitBreaker(client, failure_threshold=2, window_s=10, cooling_s=0.3)
    endpoint = "openai:m:k1"
    start_ms = time.time() * 1000
    assert breaker.admit(endpoint).action == "call"
    assert breaker.failed(endpoint, call_started_ms=start_ms) is False  # nobody succeeded
    breaker.failed(endpoint, call_started_ms=start_ms)
    waiting = breaker.admit(endpoint)
    assert waiting.action == "wait" and 0 < waiting.wait_s <= 0.3
    time.sleep(0.35)
    assert breaker.admit(endpoint).action == "probe"
    assert breaker.admit(endpoint).action == "wait"  # only one probe at a time
    breaker.succeeded(endpoint)
    assert breaker.admit(endpoint).action == "call"
    assert breaker.state(endpoint, time.time() * 1000) == ("closed", 1)
    # A failure while other calls succeed is the request's own problem.
    assert breaker.failed(endpoint, call_started_ms=start_ms) is True
