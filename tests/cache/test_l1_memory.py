"""L1: bounded by entries and by real bytes, TTLs, a recency+frequency eviction, thread safety."""

from __future__ import annotations

import gc
import hashlib
import random
import threading
import tracemalloc

from agentqueue.cache import CacheTags, InvalidationTarget, StoredEntry
from agentqueue.cache.l1_memory import ENTRY_OVERHEAD_BYTES, L1MemoryCache

TAGS = CacheTags("acme", "support", "gpt-4o-mini")


def key(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def item(
    n: int, payload: bytes = b"x" * 100, *, expires_at: float = 4e9, tags: CacheTags = TAGS
) -> StoredEntry:
    return StoredEntry(key(n), payload, expires_at, tags)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_hit_returns_the_stored_bytes_and_expiry() -> None:
    l1 = L1MemoryCache(max_entries=10, max_bytes=10_000)
    l1.put_many([item(1, b"payload", expires_at=5e9)])
    (hit,) = l1.get_many([key(1)])
    assert hit is not None and hit.payload == b"payload" and hit.expires_at == 5e9
    assert l1.get_many([key(2)]) == [None]


def test_entries_expire_by_ttl() -> None:
    # Given an entry valid until t=1010, When the clock passes it, Then it is a miss and gone.
    clock = Clock()
    l1 = L1MemoryCache(max_entries=10, max_bytes=10_000, clock=clock)
    l1.put_many([item(1, expires_at=1_010.0)])
    clock.now = 1_009.9
    assert l1.get_many([key(1)])[0] is not None
    clock.now = 1_010.0
    assert l1.get_many([key(1)]) == [None]
    assert len(l1) == 0 and l1.bytes_used == 0


def test_entry_count_limit() -> None:
    l1 = L1MemoryCache(max_entries=50, max_bytes=10**9)
    l1.put_many([item(n) for n in range(500)])
    assert len(l1) == 50
    # The newest survive a flood of one-off entries.
    assert l1.get_many([key(499)])[0] is not None
    assert l1.get_many([key(0)]) == [None]


def test_frequently_used_entries_survive_a_flood_of_one_offs() -> None:
    # Given 20 entries read twice (protected), When 10,000 one-off entries flood in,
    # Then the 20 are still there: eviction weighs frequency, not only recency.
    l1 = L1MemoryCache(max_entries=100, max_bytes=10**9)
    hot = [item(n) for n in range(20)]
    l1.put_many(hot)
    l1.get_many([i.key for i in hot])
    for n in range(1_000, 11_000):
        l1.put_many([item(n)])
    assert all(hit is not None for hit in l1.get_many([i.key for i in hot]))
    # A plain LRU would have kept none of them: prove the flood did cycle probation.
    assert l1.get_many([key(1_000)]) == [None]


def test_replacing_an_entry_keeps_the_byte_count_exact() -> None:
    l1 = L1MemoryCache(max_entries=10, max_bytes=10**6)
    l1.put_many([item(1, b"a" * 1000)])
    l1.get_many([key(1)])  # now protected
    l1.put_many([item(1, b"b" * 10)])
    assert l1.get_many([key(1)])[0].payload == b"b" * 10  # type: ignore[union-attr]
    l1.invalidate(InvalidationTarget(keys=(key(1),)))
    assert l1.bytes_used == 0 and len(l1) == 0


def test_an_entry_larger_than_the_whole_budget_is_not_kept() -> None:
    l1 = L1MemoryCache(max_entries=10, max_bytes=5_000)
    l1.put_many([item(1), item(2, b"z" * 10_000)])
    assert l1.get_many([key(1), key(2)])[1] is None
    assert l1.get_many([key(1)])[0] is not None


def test_byte_limit_holds_under_a_flood_of_100k_random_entries() -> None:
    # Given an 8 MiB L1, When 100,000 entries of random sizes (10 B .. 24 KiB) are inserted,
    # Then the accounted bytes never pass the limit, the cache stays well used, and the real
    # memory it holds (tracemalloc) is within 10% of the limit.
    limit = 8 * 1024 * 1024
    l1 = L1MemoryCache(max_entries=1_000_000, max_bytes=limit)
    rng = random.Random(4)
    blob = rng.randbytes(24 * 1024)
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        highest = 0
        for n in range(100_000):
            size = rng.randint(10, 24 * 1024)
            l1.put_many([StoredEntry(f"{n:064x}", blob[:size], 4e9, TAGS)])
            if l1.bytes_used > highest:
                highest = l1.bytes_used
            if n % 20 == 0:  # reads move some entries to the protected segment
                l1.get_many([f"{n - rng.randint(0, 200):064x}"])
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert highest <= limit
    assert l1.bytes_used >= 0.9 * limit
    assert abs(held - limit) <= 0.10 * limit, (held, limit)


def test_tag_invalidation_drops_matching_entries_only() -> None:
    l1 = L1MemoryCache(max_entries=100, max_bytes=10**6)
    other = CacheTags("globex", "support", "gpt-4o-mini")
    l1.put_many([item(1), item(2, tags=other), item(3, tags=CacheTags("acme", "billing", "o3"))])
    epoch = l1.epoch
    removed = l1.invalidate(InvalidationTarget(tenant="acme", agent_type="support"))
    assert removed == {key(1)}
    assert l1.get_many([key(1), key(2), key(3)])[0] is None
    assert all(hit is not None for hit in l1.get_many([key(2), key(3)]))
    assert l1.epoch != epoch


def test_a_promotion_started_before_an_invalidation_does_not_land() -> None:
    # Given a lookup that read the epoch, When an invalidation runs before it promotes,
    # Then the promotion is dropped (it could carry the invalidated value).
    l1 = L1MemoryCache(max_entries=10, max_bytes=10**6)
    epoch = l1.epoch
    l1.invalidate(InvalidationTarget(model="gpt-4o-mini"))
    l1.put_many([item(1)], unless_invalidated_since=epoch)
    assert l1.get_many([key(1)]) == [None]
    l1.put_many([item(1)], unless_invalidated_since=l1.epoch)
    assert l1.get_many([key(1)])[0] is not None


def test_concurrent_threads_keep_the_accounting_consistent() -> None:
    # Given 8 threads inserting, reading and invalidating at once, Then the byte count equals
    # the sum over what is really held and stays within the limit.
    l1 = L1MemoryCache(max_entries=300, max_bytes=200_000)

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for n in range(3_000):
            k = rng.randint(0, 1_000)
            if n % 3:
                l1.put_many([item(k, b"p" * rng.randint(1, 2_000))])
            else:
                l1.get_many([key(k)])
            if n % 500 == 0:
                l1.invalidate(InvalidationTarget(keys=(key(k),)))

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    held = [hit for hit in l1.get_many([key(k) for k in range(1_001)]) if hit is not None]
    assert len(held) == len(l1) <= 300
    assert l1.bytes_used == sum(len(h.payload or b"") + 64 + ENTRY_OVERHEAD_BYTES for h in held)
    assert l1.bytes_used <= 200_000
