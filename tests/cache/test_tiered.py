"""The tiered cache: L1 -> L2 -> L3 reads with promotion, policy-driven writes, tenants,
batching, and what is never stored."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis
from sqlalchemy import event, func, select

from agentqueue.cache import CacheRequest, TieredCache
from agentqueue.cache.l2_redis import entry_key
from agentqueue.persistence.cache_tables import CacheEntryRecord
from agentqueue.persistence.engine import get_engine, get_sessionmaker
from tests.cache.conftest import CacheFactory
from tests.cache.support import (
    PROVIDER_CALLS_KEY,
    answer,
    make_job,
    make_settings,
    request_for,
    run_job,
)
from tests.cache.test_l2_redis import CountingRedis

ALL_TIERS = {"cache_agent_response_tiers": "l1,l2,l3"}


def in_l3(database_url: str, key: str) -> bool:
    with get_sessionmaker(database_url)() as session:
        return bool(session.scalar(select(func.count()).where(CacheEntryRecord.cache_key == key)))


def where_is(cache: TieredCache, client: redis.Redis, database_url: str, key: str) -> set[str]:
    tiers = set()
    if cache.l1.get_many([key])[0] is not None:
        tiers.add("l1")
    if client.exists(entry_key(key)):
        tiers.add("l2")
    if in_l3(database_url, key):
        tiers.add("l3")
    return tiers


def request(cache_settings: Any, **job: Any) -> CacheRequest:
    return request_for(make_job(**job), cache_settings)


def test_same_request_from_two_tenants_never_crosses(
    make_cache: CacheFactory, redis_url: str, sqlite_url: str
) -> None:
    # Given tenant acme's answer cached in every tier, When tenant globex sends the very same
    # request, Then globex misses everywhere and makes its own provider call; each tenant then
    # hits only its own entry.
    cache = make_cache(sqlite_url, **ALL_TIERS)
    settings = make_settings(redis_url, **ALL_TIERS)
    acme = request(settings, tenant="acme")
    globex = request(settings, tenant="globex")
    assert acme.key != globex.key
    assert run_job(cache, acme, redis_url)[0] == "leader"
    assert cache.lookup(globex).hit is False
    assert run_job(cache, globex, redis_url)[0] == "leader"
    client = redis.Redis.from_url(redis_url)
    assert int(client.get(PROVIDER_CALLS_KEY) or 0) == 2
    assert run_job(cache, acme, redis_url)[0] == "hit:l1"
    assert run_job(cache, globex, redis_url)[0] == "hit:l1"
    cache.l1.clear()
    client.delete(entry_key(acme.key), entry_key(globex.key))
    assert cache.lookup(globex).tier == "l3"
    assert cache.invalidate_tags(tenant="globex") == 1
    assert cache.lookup(globex).hit is False
    assert cache.lookup(acme).hit is True


def test_lower_tier_hits_are_promoted_upward(
    make_cache: CacheFactory, redis_url: str, database_url: str
) -> None:
    # Given an entry only in L3, When looked up, Then it is an L3 hit copied into L2 and L1
    # with its remaining lifetime, and the next lookup is an L1 hit.
    cache = make_cache(database_url, **ALL_TIERS)
    settings = make_settings(redis_url, **ALL_TIERS)
    req = request(settings, cache={"ttl_s": 120})
    cache.store(req, answer())
    client = redis.Redis.from_url(redis_url)
    client.delete(entry_key(req.key))
    cache.l1.clear()
    assert where_is(cache, client, database_url, req.key) == {"l3"}
    time.sleep(1.1)
    found = cache.lookup(req)
    assert (found.hit, found.tier) == (True, "l3")
    assert found.entry is not None and found.entry.output == answer().output
    assert where_is(cache, client, database_url, req.key) == {"l1", "l2", "l3"}
    assert client.pttl(entry_key(req.key)) <= 119_000  # remaining life, not a fresh TTL
    assert cache.lookup(req).tier == "l1"
    cache.l1.clear()
    assert cache.lookup(req).tier == "l2"
    assert cache.lookup(req).tier == "l1"


def test_promotion_respects_the_policy(
    make_cache: CacheFactory, redis_url: str, sqlite_url: str
) -> None:
    # Given a model_output entry (L2+L3), When it is found in L3, Then it is promoted to L2
    # only, never into process memory.
    cache = make_cache(sqlite_url)
    settings = make_settings(redis_url)
    req = request(settings, cache={"policy": "model_output"})
    cache.store(req, answer())
    client = redis.Redis.from_url(redis_url)
    assert where_is(cache, client, sqlite_url, req.key) == {"l2", "l3"}
    client.delete(entry_key(req.key))
    assert cache.lookup(req).tier == "l3"
    assert where_is(cache, client, sqlite_url, req.key) == {"l2", "l3"}
    assert cache.lookup(req).tier == "l2"


@pytest.mark.parametrize(
    "policy, tiers, ttl_s",
    [
        ("agent_response", {"l1", "l2"}, 3600),
        ("model_output", {"l2", "l3"}, 7200),
        ("conversation_context", {"l1"}, 1800),
        ("tool_result", {"l1", "l2"}, 600),
    ],
)
def test_default_policies_write_their_tiers_with_their_ttl(
    make_cache: CacheFactory,
    redis_url: str,
    sqlite_url: str,
    policy: str,
    tiers: set[str],
    ttl_s: int,
) -> None:
    cache = make_cache(sqlite_url)
    req = request(make_settings(redis_url), cache={"policy": policy})
    assert req.ttl_s == ttl_s
    cache.store(req, answer())
    client = redis.Redis.from_url(redis_url)
    assert where_is(cache, client, sqlite_url, req.key) == tiers
    if "l2" in tiers:
        assert ttl_s - 2 <= client.ttl(entry_key(req.key)) <= ttl_s
    hit = cache.lookup(req)
    assert hit.hit and hit.tier == min(tiers)


def test_policies_are_configurable(
    make_cache: CacheFactory, redis_url: str, sqlite_url: str
) -> None:
    overrides = {"cache_tool_result_tiers": "l3", "cache_tool_result_ttl_s": 42}
    cache = make_cache(sqlite_url, **overrides)
    req = request(make_settings(redis_url, **overrides), cache={"policy": "tool_result"})
    assert req.ttl_s == 42
    cache.store(req, answer())
    assert where_is(cache, redis.Redis.from_url(redis_url), sqlite_url, req.key) == {"l3"}


def test_a_job_ttl_overrides_the_policy_and_entries_expire_everywhere(
    make_cache: CacheFactory, redis_url: str, sqlite_url: str
) -> None:
    cache = make_cache(sqlite_url, **ALL_TIERS)
    req = request(make_settings(redis_url, **ALL_TIERS), cache={"ttl_s": 1})
    cache.store(req, answer())
    assert cache.lookup(req).tier == "l1"
    time.sleep(1.05)
    assert cache.lookup(req).hit is False
    # Gone from L1 and L2 by TTL; the L3 row stays until purged but is a miss.
    assert cache.purge_expired().entries == 1


@pytest.mark.parametrize("finish_reason", ["length", "error"])
def test_truncated_or_failed_outputs_are_never_stored(
    make_cache: CacheFactory, redis_url: str, sqlite_url: str, finish_reason: str
) -> None:
    cache = make_cache(sqlite_url, **ALL_TIERS)
    req = request(make_settings(redis_url, **ALL_TIERS))
    cache.store_many([(req, answer("Order 1234 sh", finish_reason=finish_reason))])
    assert where_is(cache, redis.Redis.from_url(redis_url), sqlite_url, req.key) == set()
    assert cache.lookup(req).hit is False


def test_job_cache_modes(make_cache: CacheFactory, redis_url: str, sqlite_url: str) -> None:
    # no-store: neither read nor written. no-cache: not read, but its fresh answer is written.
    # Non-deterministic jobs are left alone unless they force caching.
    cache = make_cache(sqlite_url)
    settings = make_settings(redis_url)
    normal = request(settings)
    cache.store(normal, answer("cached"))
    assert cache.lookup(request(settings, cache={"mode": "no-store"})).hit is False
    assert cache.lookup(request(settings, cache={"mode": "no-cache"})).hit is False
    cache.store(request(settings, cache={"mode": "no-store"}), answer("not stored"))
    assert cache.lookup(normal).entry.output == "cached"  # type: ignore[union-attr]
    cache.store(request(settings, cache={"mode": "no-cache"}), answer("refreshed"))
    assert cache.lookup(normal).entry.output == "refreshed"  # type: ignore[union-attr]
    creative = request(settings, params={"temperature": 0.8})
    cache.store(creative, answer("creative"))
    assert cache.lookup(creative).hit is False
    forced = request(settings, params={"temperature": 0.8}, cache={"mode": "force"})
    cache.store(forced, answer("forced"))
    assert cache.lookup(forced).entry.output == "forced"  # type: ignore[union-attr]


def test_a_batch_costs_one_l2_round_trip_and_one_l3_query(redis_url: str, sqlite_url: str) -> None:
    # Given 30 requests: 10 in L1, 10 only in L2, 5 only in L3, 5 nowhere, When looked up
    # together, Then results come back in order with their tiers, using one L2 read and one
    # L3 query (promotions write afterwards).
    settings = make_settings(redis_url, **ALL_TIERS)
    client = CountingRedis.from_url(redis_url)
    cache = TieredCache.from_settings(settings, get_sessionmaker(sqlite_url), redis_client=client)
    try:
        requests = [
            request(settings, messages=[{"role": "user", "content": f"q{n}"}]) for n in range(30)
        ]
        cache.store_many([(r, answer(f"a{n}")) for n, r in enumerate(requests[:25])])
        cache.l1.clear()
        cache.lookup_many(requests[:10])  # L2 hits, promoted to L1
        client.delete(*(entry_key(r.key) for r in requests[20:25]))
        client.delete(*(entry_key(r.key) for r in requests[10:20]))
        cache.store_many([(r, answer(f"a{n + 10}")) for n, r in enumerate(requests[10:20])])
        for r in requests[10:20]:
            cache.l1.invalidate(_keys(r.key))
        queries: list[str] = []
        engine = get_engine(sqlite_url)
        listener = _count_checkouts(queries)
        event.listen(engine.pool, "checkout", listener)
        before = CountingRedis.round_trips
        try:
            results = cache.lookup_many(requests)
        finally:
            event.remove(engine.pool, "checkout", listener)
        tiers = [r.tier for r in results]
        assert tiers == ["l1"] * 10 + ["l2"] * 10 + ["l3"] * 5 + [None] * 5
        assert [r.entry.output for r in results[:25]] == [f"a{n}" for n in range(25)]  # type: ignore[union-attr]
        # 1 read + 1 promotion pipeline for the L3 hits; the L3 read is one checkout.
        assert CountingRedis.round_trips - before == 2
        assert len(queries) == 1
    finally:
        cache.close()


def test_concurrent_lookups_and_stores_from_threads(
    make_cache: CacheFactory, redis_url: str, sqlite_url: str
) -> None:
    # The threads pool: 16 threads hammering one cache never see a wrong answer.
    cache = make_cache(sqlite_url, **ALL_TIERS)
    settings = make_settings(redis_url, **ALL_TIERS)
    requests = [
        request(settings, messages=[{"role": "user", "content": f"q{n}"}]) for n in range(40)
    ]
    errors: list[str] = []

    def work(offset: int) -> None:
        for step in range(120):
            n = (offset + step) % 40
            found = cache.lookup(requests[n])
            if found.hit and found.entry is not None and found.entry.output != f"a{n}":
                errors.append(f"{n}: {found.entry.output}")
            if not found.hit:
                cache.store(requests[n], answer(f"a{n}"))

    threads = [threading.Thread(target=work, args=(i * 5,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(r.hit for r in cache.lookup_many(requests))


def _keys(key: str) -> Any:
    from agentqueue.cache import InvalidationTarget

    return InvalidationTarget(keys=(key,))


def _count_checkouts(queries: list[str]) -> Any:
    def on_checkout(*_: Any) -> None:
        queries.append("checkout")

    return on_checkout
