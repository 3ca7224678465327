"""`TierGuard`: a failing tier reads as a miss; its errors are counted, logged rarely, and the
tier is skipped for a while instead of making every job wait for a dead server."""

from __future__ import annotations

import logging
import threading
import time

from agentqueue.cache.stats import CacheStats

logger = logging.getLogger("agentqueue.cache")

LOG_INTERVAL_S = 30.0


class TierGuard:
    """Health of one tier (or of the cache's Redis use): open for `retry_after_s` after an error."""

    def __init__(self, tier: str, stats: CacheStats, *, retry_after_s: float) -> None:
        self.tier = tier
        self._stats = stats
        self._retry_after_s = retry_after_s
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._next_log = 0.0
        self._unlogged = 0

    def available(self) -> bool:
        """False while the tier is resting after a failure; callers treat it as a miss."""
        return time.monotonic() >= self._down_until

    def failed(self, operation: str, exc: BaseException, *, rest: bool = True) -> None:
        """Count the error, rest the tier (unless the tier is fine and one value was bad), and
        log at most once per `LOG_INTERVAL_S`."""
        self._stats.add(self.tier, "errors")
        now = time.monotonic()
        with self._lock:
            if rest:
                self._down_until = now + self._retry_after_s
            if now < self._next_log:
                self._unlogged += 1
                return
            suppressed, self._unlogged = self._unlogged, 0
            self._next_log = now + LOG_INTERVAL_S
        # The exception text of redis-py / SQLAlchemy names host and port, never credentials.
        logger.warning(
            "cache tier %s failed during %s (%s: %s); %s%s",
            self.tier,
            operation,
            type(exc).__name__,
            str(exc).splitlines()[0][:200] if str(exc) else "",
            f"treating it as a miss for {self._retry_after_s:.1f}s" if rest else "a miss",
            f"; {suppressed} similar errors not logged" if suppressed else "",
        )
