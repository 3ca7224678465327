"""Invalidation across every tier and every worker process's L1 (through Redis pub/sub)."""

from __future__ import annotations

import json

import redis

from agentqueue.cache.base import InvalidationTarget
from agentqueue.cache.degrade import TierGuard
from agentqueue.cache.l1_memory import L1MemoryCache
from agentqueue.cache.l2_redis import L2RedisCache
from agentqueue.cache.l3_sql import L3SqlCache
from agentqueue.constants import SINGLE_FLIGHT_RESULT_PREFIX


def encode_message(target: InvalidationTarget, *, origin: str) -> bytes:
    tags = {"tenant": target.tenant, "agent_type": target.agent_type, "model": target.model}
    body = {"origin": origin, "keys": list(target.keys), "tags": tags}
    return json.dumps(body, separators=(",", ":")).encode()


def decode_message(data: bytes) -> tuple[str, InvalidationTarget]:
    """`(origin, target)` from a pub/sub message.

    Raises:
        ValueError: not an invalidation message.
    """
    body = json.loads(data)
    tags = body.get("tags") or {}
    target = InvalidationTarget(
        keys=tuple(str(key) for key in body.get("keys") or ()),
        tenant=tags.get("tenant"),
        agent_type=tags.get("agent_type"),
        model=tags.get("model"),
    )
    if target.by_tags and target.tenant is target.agent_type is target.model is None:
        raise ValueError("an invalidation message names neither keys nor tags")
    return str(body.get("origin", "")), target


class Invalidator:
    """Removes entries bottom-up (L3, L2, then every L1), so no racing lookup can promote a
    removed entry back up: L2 promotions check the epoch L2 bumps, L1 ones the L1 epoch."""

    def __init__(
        self,
        *,
        l1: L1MemoryCache,
        l2: L2RedisCache,
        l3: L3SqlCache,
        client: redis.Redis,
        guard: TierGuard,
        channel: str,
        origin: str,
    ) -> None:
        self._l1, self._l2, self._l3 = l1, l2, l3
        self._client = client
        self._guard = guard
        self.channel = channel
        self._origin = origin

    def invalidate(self, target: InvalidationTarget) -> set[str]:
        """Drop the target everywhere; return the keys that were removed from some tier."""
        removed = self._l3.invalidate(target)
        removed |= self._l2.invalidate(target)
        self._publish(target, handoffs=removed | set(target.keys))
        removed |= self._l1.invalidate(target)
        return removed

    def on_message(self, data: bytes) -> None:
        """Apply another process's invalidation to this process's L1 (listener thread)."""
        origin, target = decode_message(data)
        if origin != self._origin:
            self._l1.invalidate(target)

    def _publish(self, target: InvalidationTarget, *, handoffs: set[str]) -> None:
        if not self._guard.available():
            return
        pipe = self._client.pipeline(transaction=False)
        if handoffs:
            # A single-flight result handed to late followers must not outlive the entry.
            pipe.delete(*(f"{SINGLE_FLIGHT_RESULT_PREFIX}{key}" for key in sorted(handoffs)))
        pipe.publish(self.channel, encode_message(target, origin=self._origin))
        try:
            pipe.execute()
        except Exception as exc:  # degrade, never fail: other L1s expire by TTL
            self._guard.failed("publish invalidation", exc)
