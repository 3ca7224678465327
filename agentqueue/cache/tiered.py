"""`TieredCache`: read L1 -> L2 -> L3, promote hits upward, write per policy, never fail a job."""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import redis
from sqlalchemy.orm import Session, sessionmaker

from agentqueue.cache.base import InvalidationTarget, StoredEntry, TierHit
from agentqueue.cache.degrade import TierGuard
from agentqueue.cache.entry import CacheEntry, EntryDecodeError
from agentqueue.cache.invalidation import Invalidator
from agentqueue.cache.l1_memory import L1MemoryCache
from agentqueue.cache.l2_redis import L2RedisCache
from agentqueue.cache.l3_sql import L3SqlCache
from agentqueue.cache.listener import CacheListener
from agentqueue.cache.purge import PurgeResult, purge_expired
from agentqueue.cache.redis_client import build_cache_redis_client, namespaced_channel
from agentqueue.cache.request import MISS, CacheLookup, CacheRequest
from agentqueue.cache.single_flight import SingleFlight, SingleFlightTicket
from agentqueue.cache.stats import CacheStats, read_shared
from agentqueue.constants import CACHE_INVALIDATION_CHANNEL, SINGLE_FLIGHT_DONE_CHANNEL
from agentqueue.setting_types.tiers import TIER_ORDER, TierName
from agentqueue.settings import Settings


class TieredCache:
    """The cache one worker process uses; thread-safe. Build it after fork (`from_settings`)."""

    def __init__(
        self,
        *,
        l1: L1MemoryCache,
        l2: L2RedisCache,
        l3: L3SqlCache,
        single_flight: SingleFlight,
        invalidator: Invalidator,
        stats: CacheStats,
        redis_client: redis.Redis,
        redis_guard: TierGuard,
        sessionmaker: sessionmaker[Session],
        stats_flush_s: float,
        owns_redis_client: bool = False,
    ) -> None:
        self.l1, self.l2, self.l3 = l1, l2, l3
        self._single_flight = single_flight
        self._invalidator = invalidator
        self._stats = stats
        self._client = redis_client
        self._redis_guard = redis_guard
        self._sessionmaker = sessionmaker
        self._stats_flush_s = stats_flush_s
        self._owns_redis_client = owns_redis_client
        self._listener: CacheListener | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        sessionmaker: sessionmaker[Session],
        *,
        redis_client: redis.Redis | None = None,
    ) -> TieredCache:
        """Wire every tier from settings; build it in each worker process after fork.

        `redis_client` must point at the cache's Redis (see `cache_redis_url`) and return
        bytes; by default a client with short timeouts is built from settings.

        Raises:
            ValueError: `redis_client` decodes responses to str.
        """
        if redis_client is not None and redis_client.get_connection_kwargs().get(
            "decode_responses"
        ):
            raise ValueError("the cache needs a Redis client without decode_responses")
        client = redis_client or build_cache_redis_client(settings)
        stats = CacheStats(f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
        redis_guard = TierGuard("l2", stats, retry_after_s=settings.cache_tier_retry_s)
        sql_guard = TierGuard("l3", stats, retry_after_s=settings.cache_tier_retry_s)
        l1 = L1MemoryCache(
            max_entries=settings.cache_l1_max_entries,
            max_bytes=settings.cache_l1_max_bytes,
            stats=stats,
        )
        l2 = L2RedisCache(
            client,
            guard=redis_guard,
            stats=stats,
            compress_min_bytes=settings.cache_compress_min_bytes,
        )
        l3 = L3SqlCache(sessionmaker, guard=sql_guard, stats=stats)
        single_flight = SingleFlight(
            client,
            guard=redis_guard,
            stats=stats,
            wait_s=settings.cache_single_flight_wait_s,
            channel=namespaced_channel(client, SINGLE_FLIGHT_DONE_CHANNEL),
            compress_min_bytes=settings.cache_compress_min_bytes,
        )
        invalidator = Invalidator(
            l1=l1,
            l2=l2,
            l3=l3,
            client=client,
            guard=redis_guard,
            channel=namespaced_channel(client, CACHE_INVALIDATION_CHANNEL),
            origin=stats.worker_id,
        )
        return cls(
            l1=l1,
            l2=l2,
            l3=l3,
            single_flight=single_flight,
            invalidator=invalidator,
            stats=stats,
            redis_client=client,
            redis_guard=redis_guard,
            sessionmaker=sessionmaker,
            stats_flush_s=settings.cache_stats_flush_s,
            owns_redis_client=redis_client is None,
        )

    def lookup(self, request: CacheRequest) -> CacheLookup:
        return self.lookup_many([request])[0]

    def lookup_many(self, requests: Sequence[CacheRequest]) -> list[CacheLookup]:
        """Results in order. One L1 pass, then at most one L2 MGET and one L3 SELECT for the
        whole batch; hits are promoted to the tiers above them that their policy uses."""
        results: list[CacheLookup] = [MISS] * len(requests)
        pending = [i for i, request in enumerate(requests) if request.readable]
        l1_epoch = self.l1.epoch  # read first: a promotion must not outlive a later invalidation
        l2_epoch: int | None = None
        for tier in TIER_ORDER:
            wanted = [i for i in pending if tier in requests[i].policy.tiers]
            if not wanted:
                continue
            keys = [requests[i].key for i in wanted]
            if tier == "l1":
                hits = self.l1.get_many(keys)
            elif tier == "l2":
                reaches_l3 = False
                for i in wanted:
                    reaches_l3 = reaches_l3 or "l3" in requests[i].policy.tiers
                l2_epoch, hits = self.l2.read(keys, with_epoch=reaches_l3)
            else:
                hits = self.l3.get_many(keys)
            found = 0
            upward: dict[int, TierHit] = {}
            for index, hit in zip(wanted, hits, strict=False):  # same length; strict costs 0.1 µs
                if hit is None:
                    continue
                try:
                    results[index] = CacheLookup(True, tier, hit.decoded())
                except EntryDecodeError:
                    self._stats.add(tier, "errors")  # incompatible or corrupt: a miss, counted
                    continue
                found += 1
                if requests[index].policy.top != tier:
                    upward[index] = hit
            self._stats.add_lookups(tier, found, len(wanted) - found)
            if upward:
                self._promote(tier, requests, upward, l1_epoch=l1_epoch, l2_epoch=l2_epoch)
            if found:
                pending = [i for i in pending if results[i] is MISS]
                if not pending:
                    break
        return results

    def store(self, request: CacheRequest, entry: CacheEntry) -> None:
        self.store_many([(request, entry)])

    def store_many(self, items: Sequence[tuple[CacheRequest, CacheEntry]]) -> None:
        """Write each storable entry of a writable request to its policy's tiers: one L2
        pipeline and one L3 transaction. Truncated and failed outputs are never written."""
        now = time.time()
        by_tier: dict[str, list[StoredEntry]] = {"l1": [], "l2": [], "l3": []}
        for request, entry in items:
            if not (request.writable and entry.storable):
                continue
            stored = StoredEntry(
                key=request.key,
                payload=entry.to_json(),
                expires_at=now + request.ttl_s,
                tags=request.tags,
                policy=request.policy.name,
                entry=entry,
            )
            for tier in request.policy.tiers:
                by_tier[tier].append(stored)
        if by_tier["l1"]:
            self.l1.put_many(by_tier["l1"])
            self._stats.add("l1", "stores", len(by_tier["l1"]))
        if by_tier["l2"]:
            self.l2.put_many(by_tier["l2"])
        if by_tier["l3"]:
            self.l3.put_many(by_tier["l3"])

    @contextlib.contextmanager
    def single_flight(self, request: CacheRequest) -> Iterator[SingleFlightTicket]:
        """Use after a miss: `ticket.leader` calls the provider and `ticket.complete(entry)`;
        followers get `ticket.entry`, or (after the bounded wait) call it alone and complete."""
        with self._single_flight.flight(request, self.store_many) as ticket:
            yield ticket

    def invalidate_key(self, key: str) -> None:
        self._invalidator.invalidate(InvalidationTarget(keys=(key,)))

    def invalidate_tags(
        self, *, tenant: str | None = None, agent_type: str | None = None, model: str | None = None
    ) -> int:
        """Drop every entry matching all given tags in every tier and every worker's L1;
        return how many keys this call saw removed.

        Raises:
            ValueError: no tag given (use a key, or name at least one tag).
        """
        if tenant is None and agent_type is None and model is None:
            raise ValueError("name at least one of tenant, agent_type or model to invalidate")
        target = InvalidationTarget(tenant=tenant, agent_type=agent_type, model=model)
        return len(self._invalidator.invalidate(target))

    def stats(self) -> dict[str, Any]:
        """Counters of every worker (from Redis) plus L1 gauges of live workers and L3 size;
        this process's own counters alone when Redis is unreachable."""
        self.flush_stats()
        result: dict[str, Any]
        try:
            result = read_shared(self._client)
            result["scope"] = "all_workers"
        except Exception as exc:
            self._redis_guard.failed("stats", exc)
            result = dict(self._stats.local())
            result["l1"].update(entries=len(self.l1), bytes=self.l1.bytes_used)
            result["scope"] = "this_process"
        result["l3"].update(self.l3.usage())
        return result

    def flush_stats(self) -> None:
        """Push pending counters to Redis (the listener does this every `cache_stats_flush_s`)."""
        if not self._redis_guard.available():
            return
        gauges = {"l1_entries": len(self.l1), "l1_bytes": self.l1.bytes_used}
        ttl = max(30, int(self._stats_flush_s * 3))
        try:
            self._stats.flush(self._client, gauges, gauge_ttl_s=ttl)
        except Exception as exc:
            self._redis_guard.failed("stats flush", exc)

    def purge_expired(self) -> PurgeResult:
        """Delete expired L3 rows (beat task `purge_expired_cache`).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database is unreachable; retry next time.
        """
        result = purge_expired(self._sessionmaker)
        self._stats.add("l3", "expirations", result.entries)
        return result

    def start_listener(self, *, wait_s: float = 5.0) -> bool:
        """Receive other workers' invalidations and single-flight results; flush stats
        periodically. Returns whether the subscription is live (it keeps retrying if not)."""
        if self._listener is None:
            self._listener = CacheListener(
                self._client,
                {
                    self._invalidator.channel: self._invalidator.on_message,
                    self._single_flight.channel: self._single_flight.notify,
                },
                on_resubscribe=self.l1.clear,
                tick=self.flush_stats,
                tick_interval_s=self._stats_flush_s,
            )
        return self._listener.start(wait_s=wait_s)

    def close(self) -> None:
        """Stop the listener, flush statistics, and release the Redis client if we built it."""
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        self.flush_stats()
        with contextlib.suppress(Exception):
            self._stats.forget_worker(self._client)
        if self._owns_redis_client:
            with contextlib.suppress(Exception):
                self._client.close()

    def _promote(
        self,
        source: TierName,
        requests: Sequence[CacheRequest],
        found: dict[int, TierHit],
        *,
        l1_epoch: int,
        l2_epoch: int | None,
    ) -> None:
        """Copy hits to the tiers above `source` that their policy uses, keeping their expiry;
        skipped if an invalidation ran since the lookup began (the epochs moved)."""
        to_l1: list[StoredEntry] = []
        to_l2: list[StoredEntry] = []
        for index, hit in found.items():
            request = requests[index]
            tiers = request.policy.tiers
            into_l1 = "l1" in tiers
            into_l2 = source == "l3" and "l2" in tiers
            if into_l1 or into_l2:
                item = StoredEntry(
                    request.key,
                    hit.encoded(),
                    hit.expires_at,
                    request.tags,
                    request.policy.name,
                    hit.entry,
                )
                if into_l1:
                    to_l1.append(item)
                if into_l2:
                    to_l2.append(item)
        if to_l2 and l2_epoch is not None:
            self.l2.put_many(to_l2, unless_invalidated_since=l2_epoch)
        if to_l1:
            self.l1.put_many(to_l1, unless_invalidated_since=l1_epoch)
