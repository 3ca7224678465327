"""L3 on SQLite and PostgreSQL: bodies stored once per content hash, expiry, tag invalidation,
and the purge of expired rows."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from agentqueue.cache import CacheTags, InvalidationTarget, StoredEntry, purge_expired
from agentqueue.cache.degrade import TierGuard
from agentqueue.cache.l3_sql import L3SqlCache, body_hash
from agentqueue.cache.stats import CacheStats
from agentqueue.persistence.cache_tables import CacheBodyRecord, CacheEntryRecord
from agentqueue.persistence.engine import get_sessionmaker
from tests.cache.support import answer

TAGS = CacheTags("acme", "support", "gpt-4o-mini")


def make_l3(database_url: str) -> tuple[L3SqlCache, CacheStats]:
    stats = CacheStats("test")
    guard = TierGuard("l3", stats, retry_after_s=5)
    return L3SqlCache(get_sessionmaker(database_url), guard=guard, stats=stats), stats


def stored(
    key: str, output: str = "Order 1234 ships today.", *, ttl_s: float = 60, tags: CacheTags = TAGS
) -> StoredEntry:
    entry = answer(output)
    return StoredEntry(key, entry.to_json(), time.time() + ttl_s, tags, "model_output", entry)


def counts(database_url: str) -> tuple[int, int]:
    with get_sessionmaker(database_url)() as session:
        entries = session.scalar(select(func.count()).select_from(CacheEntryRecord))
        bodies = session.scalar(select(func.count()).select_from(CacheBodyRecord))
    return int(entries or 0), int(bodies or 0)


def test_round_trip_keeps_every_field(database_url: str) -> None:
    l3, stats = make_l3(database_url)
    item = stored("k1", "Ünïcode ✓ answer")
    l3.put_many([item])
    (hit,) = l3.get_many(["k1"])
    assert hit is not None
    assert hit.decoded() == item.entry
    assert abs(hit.expires_at - item.expires_at) < 0.001
    assert hit.decoded().created_at.tzinfo is not None
    assert stats.local()["l3"]["stores"] == 1


def test_identical_responses_are_stored_once(database_url: str) -> None:
    # Given three keys, two answered identically, When stored (in two transactions),
    # Then there are three entries but two bodies, and each key reads its own answer.
    l3, _ = make_l3(database_url)
    l3.put_many([stored("a", "same answer"), stored("b", "other answer")])
    l3.put_many([stored("c", "same answer")])
    assert counts(database_url) == (3, 2)
    with get_sessionmaker(database_url)() as session:
        hashes = session.scalars(select(CacheEntryRecord.body_hash).order_by("cache_key")).all()
    assert hashes[0] == hashes[2] == body_hash("same answer") != hashes[1]
    outputs = [hit.decoded().output for hit in l3.get_many(["a", "b", "c"]) if hit]
    assert outputs == ["same answer", "other answer", "same answer"]


def test_restoring_a_key_replaces_it(database_url: str) -> None:
    l3, _ = make_l3(database_url)
    l3.put_many([stored("k", "old")])
    l3.put_many([stored("k", "new"), stored("k", "newest")])  # duplicates in one batch too
    assert l3.get_many(["k"])[0].decoded().output == "newest"  # type: ignore[union-attr]
    assert counts(database_url)[0] == 1


def test_expired_rows_are_misses(database_url: str) -> None:
    l3, _ = make_l3(database_url)
    l3.put_many([stored("live"), stored("dead", ttl_s=0.2)])
    time.sleep(0.3)
    hits = l3.get_many(["live", "dead", "never"])
    assert hits[0] is not None and hits[1:] == [None, None]


def test_a_large_batch_is_read_in_one_call(database_url: str) -> None:
    l3, _ = make_l3(database_url)
    l3.put_many([stored(f"k{n:04d}", f"answer {n % 7}") for n in range(1_200)])
    hits = l3.get_many([f"k{n:04d}" for n in range(1_300)])
    assert sum(hit is not None for hit in hits) == 1_200
    assert hits[1_199].decoded().output == "answer 2"  # type: ignore[union-attr]
    assert counts(database_url) == (1_200, 7)


def test_invalidate_by_key_and_by_tags(database_url: str) -> None:
    l3, _ = make_l3(database_url)
    l3.put_many(
        [
            stored("a1"),
            stored("a2", tags=CacheTags("acme", "billing", "gpt-4o-mini")),
            stored("g1", tags=CacheTags("globex", "support", "gpt-4o-mini")),
            stored("o1", tags=CacheTags("acme", "support", "o3")),
        ]
    )
    assert l3.invalidate(InvalidationTarget(keys=("a2", "missing"))) == {"a2"}
    assert l3.invalidate(InvalidationTarget(model="gpt-4o-mini")) == {"a1", "g1"}
    assert [h is not None for h in l3.get_many(["a1", "a2", "g1", "o1"])] == [
        False,
        False,
        False,
        True,
    ]


def test_purge_deletes_expired_entries_and_orphan_bodies(database_url: str) -> None:
    # Given live, expired and invalidated entries, When purged past the grace period,
    # Then expired rows and bodies nothing references are gone; live ones stay.
    l3, _ = make_l3(database_url)
    l3.put_many(
        [stored("live", "kept", ttl_s=3600), stored("shared", "kept"), stored("old", "stale")]
    )
    l3.put_many([stored("dead", "expired body", ttl_s=0.1)])
    l3.invalidate(InvalidationTarget(keys=("shared",)))
    time.sleep(0.2)
    sessionmaker = get_sessionmaker(database_url)
    with sessionmaker() as session, session.begin():
        session.execute(
            update(CacheEntryRecord)
            .where(CacheEntryRecord.cache_key == "old")
            .values(expires_at=datetime.now(UTC) - timedelta(days=1))
        )
    # Within the grace period a body may be about to gain an entry: it is kept.
    first = purge_expired(sessionmaker)
    assert (first.entries, first.bodies) == (2, 0)
    later = purge_expired(sessionmaker, now=datetime.now(UTC) + timedelta(minutes=10))
    assert (later.entries, later.bodies) == (0, 2)
    assert counts(database_url) == (1, 1)
    assert l3.get_many(["live"])[0].decoded().output == "kept"  # type: ignore[union-attr]


def test_purge_works_in_batches(database_url: str) -> None:
    l3, _ = make_l3(database_url)
    l3.put_many([stored(f"k{n}", f"body {n}", ttl_s=0.05) for n in range(25)])
    time.sleep(0.1)
    result = purge_expired(
        get_sessionmaker(database_url),
        now=datetime.now(UTC) + timedelta(hours=1),
        batch_rows=10,
    )
    assert (result.entries, result.bodies) == (25, 25)
    assert counts(database_url) == (0, 0)


def test_usage_counts_rows_and_body_bytes(database_url: str) -> None:
    l3, _ = make_l3(database_url)
    l3.put_many([stored("a", "x" * 100), stored("b", "x" * 100), stored("c", "y" * 50)])
    assert l3.usage() == {"entries": 3, "bodies": 2, "bytes": 150}
