"""Cache statistics: counted in process memory, flushed to Redis hashes, summed across workers."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import redis

from agentqueue.constants import CACHE_STATS_KEY_PREFIX, CACHE_STATS_WORKER_PREFIX

# Counters only grow; each worker adds its deltas to one hash per tier with HINCRBY.
SECTIONS = ("l1", "l2", "l3", "single_flight")
COUNTERS = ("hits", "misses", "stores", "evictions", "expirations", "errors", "bytes_written")
SINGLE_FLIGHT_COUNTERS = ("leaders", "followers_served", "timeouts", "proceeded_alone")


class CacheStats:
    """Per-process counters; `add` is a dict update under a lock, never a Redis round trip."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self._lock = threading.Lock()
        self._pending: Counter[tuple[str, str]] = Counter()
        self._totals: Counter[tuple[str, str]] = Counter()

    def add(self, section: str, counter: str, amount: int = 1) -> None:
        if amount:
            with self._lock:
                self._pending[(section, counter)] += amount

    def add_lookups(self, section: str, hits: int, misses: int) -> None:
        with self._lock:
            pending = self._pending
            if hits:
                pending[(section, "hits")] += hits
            if misses:
                pending[(section, "misses")] += misses

    def add_many(self, section: str, counts: dict[str, int]) -> None:
        with self._lock:
            for counter, amount in counts.items():
                if amount:
                    self._pending[(section, counter)] += amount

    def local(self) -> dict[str, dict[str, int]]:
        """This process's counters since start (flushed or not)."""
        with self._lock:
            merged = self._totals + self._pending
        return _nest(merged)

    def flush(self, client: redis.Redis, gauges: dict[str, int], *, gauge_ttl_s: int) -> None:
        """Add pending deltas to the shared hashes and publish this worker's gauges.

        Raises:
            redis.RedisError: Redis is unreachable; the deltas stay pending for the next flush.
        """
        with self._lock:
            pending, self._pending = self._pending, Counter()
        pipe = client.pipeline(transaction=False)
        for (section, counter), amount in pending.items():
            pipe.hincrby(f"{CACHE_STATS_KEY_PREFIX}{section}", counter, amount)
        worker_key = f"{CACHE_STATS_WORKER_PREFIX}{self.worker_id}"
        if gauges:
            pipe.hset(worker_key, mapping=gauges)  # type: ignore[arg-type]
            pipe.expire(worker_key, gauge_ttl_s)
        try:
            pipe.execute()
        except BaseException:
            with self._lock:
                self._pending.update(pending)
            raise
        with self._lock:
            self._totals.update(pending)

    def forget_worker(self, client: redis.Redis) -> None:
        """Remove this worker's gauges (clean shutdown)."""
        client.delete(f"{CACHE_STATS_WORKER_PREFIX}{self.worker_id}")


def read_shared(client: redis.Redis) -> dict[str, Any]:
    """Counters of every worker plus the summed gauges of the workers alive now.

    Raises:
        redis.RedisError: Redis is unreachable.
    """
    pipe = client.pipeline(transaction=False)
    for section in SECTIONS:
        pipe.hgetall(f"{CACHE_STATS_KEY_PREFIX}{section}")
    sections = pipe.execute()
    merged: Counter[tuple[str, str]] = Counter()
    for section, values in zip(SECTIONS, sections, strict=True):
        for counter, amount in values.items():
            merged[(section, counter.decode())] += int(amount)
    result: dict[str, Any] = _nest(merged)
    workers = list(client.scan_iter(match=f"{CACHE_STATS_WORKER_PREFIX}*", count=500))
    gauges: Counter[str] = Counter()
    if workers:
        pipe = client.pipeline(transaction=False)
        for worker in workers:
            pipe.hgetall(worker)
        for values in pipe.execute():
            for name, amount in values.items():
                gauges[name.decode()] += int(amount)
    result["l1"]["entries"] = gauges.get("l1_entries", 0)
    result["l1"]["bytes"] = gauges.get("l1_bytes", 0)
    result["workers"] = len(workers)
    return result


def _nest(flat: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    nested: dict[str, dict[str, int]] = {}
    for section in SECTIONS:
        names = SINGLE_FLIGHT_COUNTERS if section == "single_flight" else COUNTERS
        nested[section] = {name: 0 for name in names}
    for (section, counter), amount in flat.items():
        nested.setdefault(section, {})[counter] = amount
    return nested
