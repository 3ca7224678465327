"""BackoffPolicy waits and Retry-After parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from agentqueue.providers.backoff import BackoffPolicy, parse_retry_after


def test_waits_grow_exponentially_under_full_jitter_and_respect_the_cap() -> None:
    """Given base 0.1 s and cap 1 s, then retry n waits within [0, min(1, 0.1 * 2**(n-1))]."""
    policy = BackoffPolicy(max_attempts=10, base_s=0.1, max_s=1.0)
    for retry in range(1, 9):
        ceiling = min(1.0, 0.1 * 2 ** (retry - 1))
        waits = [policy.delay_s(retry) for _ in range(200)]
        assert all(0.0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.5  # jitter spreads over the range, not pinned to 0


def test_retry_after_is_a_floor() -> None:
    """Given Retry-After 3 s, then the wait is at least 3 s even if the backoff is shorter."""
    policy = BackoffPolicy(base_s=0.01, max_s=0.05)
    assert all(policy.delay_s(1, 3.0) >= 3.0 for _ in range(50))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("1", 1.0),
        (" 2.5 ", 2.5),
        ("-4", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("inf", None),
        ("nan", None),
    ],
)
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_retry_after_http_date() -> None:
    """Given an HTTP date 30 s ahead, then about 30 s; a past date means no wait."""
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    ahead = format_datetime(now + timedelta(seconds=30), usegmt=True)
    behind = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(ahead, now=now) == pytest.approx(30.0)
    assert parse_retry_after(behind, now=now) == 0.0


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(max_attempts=0)
