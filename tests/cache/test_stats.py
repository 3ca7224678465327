"""Cache statistics: per tier, summed across workers in Redis, flushed cheaply."""

from __future__ import annotations

import time

import redis

from agentqueue.cache import TieredCache
from agentqueue.constants import CACHE_STATS_KEY_PREFIX
from agentqueue.persistence.engine import get_sessionmaker
from tests.cache.conftest import CacheFactory
from tests.cache.support import answer, make_job, make_settings, request_for
from tests.cache.test_l2_redis import CountingRedis

ALL_TIERS = {"cache_agent_response_tiers": "l1,l2,l3"}


def test_counters_are_summed_across_workers(
    make_cache: CacheFactory, redis_url: str, sqlite_url: str
) -> None:
    # Given two workers (caches) that each served hits and misses, When stats() is read in
    # either, Then it reports the sum for every tier, plus both workers' L1 gauges.
    first = make_cache(sqlite_url, **ALL_TIERS)
    second = make_cache(sqlite_url, **ALL_TIERS)
    settings = make_settings(redis_url, **ALL_TIERS)
    request = request_for(make_job(), settings)
    missing = request_for(make_job(tenant="nobody"), settings)
    first.store(request, answer())
    first.lookup(request)  # L1 hit
    second.lookup(request)  # L1 miss, L2 hit
    second.lookup(missing)  # miss in all three
    first.flush_stats()
    stats = second.stats()
    assert stats["scope"] == "all_workers" and stats["workers"] == 2
    assert stats["l1"]["hits"] == 1 and stats["l1"]["misses"] == 2
    assert stats["l2"]["hits"] == 1 and stats["l2"]["misses"] == 1
    assert stats["l3"]["misses"] == 1 and stats["l3"]["stores"] == 1
    assert stats["l2"]["stores"] == 1 and stats["l2"]["bytes_written"] > 0
    assert stats["l1"]["entries"] == 2  # one in each worker's memory
    assert stats["l1"]["bytes"] == first.l1.bytes_used + second.l1.bytes_used
    assert stats["l3"]["entries"] == 1 and stats["l3"]["bytes"] == len(answer().output)


def test_l1_hits_cost_no_redis_round_trip(redis_url: str, sqlite_url: str) -> None:
    # Given an entry in L1, When it is hit 1,000 times, Then Redis is not contacted at all;
    # the counts reach Redis only when flushed.
    settings = make_settings(redis_url)
    client = CountingRedis.from_url(redis_url)
    cache = TieredCache.from_settings(settings, get_sessionmaker(sqlite_url), redis_client=client)
    try:
        request = request_for(make_job(), settings)
        cache.store(request, answer())
        before = CountingRedis.round_trips
        for _ in range(1_000):
            assert cache.lookup(request).tier == "l1"
        assert CountingRedis.round_trips == before
        assert not redis.Redis.from_url(redis_url).hget(f"{CACHE_STATS_KEY_PREFIX}l1", "hits")
        cache.flush_stats()
        assert (
            redis.Redis.from_url(redis_url).hget(f"{CACHE_STATS_KEY_PREFIX}l1", "hits") == b"1000"
        )
    finally:
        cache.close()


def test_the_listener_flushes_periodically_and_close_removes_the_gauges(
    make_cache: CacheFactory, redis_url: str, sqlite_url: str
) -> None:
    cache = make_cache(sqlite_url, cache_stats_flush_s=0.2)
    assert cache.start_listener()
    request = request_for(make_job(), make_settings(redis_url))
    cache.store(request, answer())
    cache.lookup(request)
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not client.hget(f"{CACHE_STATS_KEY_PREFIX}l1", "hits"):
        time.sleep(0.05)
    assert client.hget(f"{CACHE_STATS_KEY_PREFIX}l1", "hits") == b"1"
    assert len(list(client.scan_iter(f"{CACHE_STATS_KEY_PREFIX}worker:*"))) == 1
    cache.close()
    assert list(client.scan_iter(f"{CACHE_STATS_KEY_PREFIX}worker:*")) == []
    # Counters survive the worker.
    assert client.hget(f"{CACHE_STATS_KEY_PREFIX}l1", "hits") == b"1"
