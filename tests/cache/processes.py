"""Entry points of the separate worker processes (spawned) used by the cache tests."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from agentqueue.cache import TieredCache
from agentqueue.persistence.engine import get_sessionmaker
from tests.cache.support import make_job, make_settings, request_for, run_job


def _cache(redis_url: str, database_url: str, overrides: dict[str, Any]) -> TieredCache:
    cache = TieredCache.from_settings(
        make_settings(redis_url, **overrides), get_sessionmaker(database_url)
    )
    assert cache.start_listener(), "the listener could not subscribe"
    return cache


def single_flight_worker(
    redis_url: str, database_url: str, threads: int, start: Any, results: Any
) -> None:
    """Run `threads` identical jobs at once, after every process is ready (`start` barrier)."""
    cache = _cache(redis_url, database_url, {})
    request = request_for(make_job(), make_settings(redis_url))
    try:
        with ThreadPoolExecutor(threads) as pool:
            start.wait(timeout=30)
            outcomes = list(pool.map(lambda _: run_job(cache, request, redis_url), range(threads)))
        results.put([(role, entry.output) for role, entry in outcomes])
    finally:
        cache.close()


def l1_holder(
    redis_url: str, database_url: str, overrides: dict[str, Any], conn: Connection
) -> None:
    """Serve commands from the test: look up the shared job (filling this L1), report whether
    this process's L1 holds it."""
    cache = _cache(redis_url, database_url, overrides)
    request = request_for(make_job(), make_settings(redis_url, **overrides))
    try:
        while True:
            command = conn.recv()
            if command == "lookup":
                found = cache.lookup(request)
                conn.send(found.tier)
            elif command == "in_l1":
                conn.send(cache.l1.get_many([request.key])[0] is not None)
            elif command == "stop":
                conn.send("stopped")
                return
    finally:
        cache.close()
