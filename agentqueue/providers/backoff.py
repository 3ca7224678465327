"""How long to wait before retrying a provider call: exponential backoff, jitter, Retry-After."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from agentqueue.backoff import backoff_s


@dataclass(frozen=True)
class BackoffPolicy:
    """Retry schedule shared by every HTTP provider.

    `max_attempts` counts the first try. The wait before retry `n` (1-based) is drawn uniformly
    from [0, min(max_s, base_s * 2**(n-1))] ("full jitter", so synchronised clients spread out),
    and is never shorter than a `Retry-After` the server sent.
    """

    max_attempts: int = 4
    base_s: float = 0.5
    max_s: float = 20.0
    # A server asking for a longer pause than this is better served by rescheduling the job
    # than by holding a worker thread asleep.
    max_retry_after_s: float = 60.0
    _random: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_s < 0 or self.max_s < 0 or self.max_retry_after_s < 0:
            raise ValueError("backoff durations must not be negative")

    def delay_s(self, retry_number: int, retry_after_s: float | None = None) -> float:
        """Seconds to sleep before retry `retry_number` (1 for the first retry)."""
        jittered = backoff_s(
            retry_number, base_s=self.base_s, max_s=self.max_s, jitter=True, rng=self._random
        )
        return max(jittered, retry_after_s or 0.0)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP date); None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
