"""Tiered result cache: L1 process memory, L2 Redis, L3 SQL, shared safely by every worker."""

from __future__ import annotations

from agentqueue.cache.base import CacheTier, InvalidationTarget, StoredEntry, TierHit
from agentqueue.cache.entry import CacheEntry
from agentqueue.cache.keys import cache_key, is_cacheable, is_deterministic, is_readable
from agentqueue.cache.policy import CachePolicy, policies_from_settings, policy_for
from agentqueue.cache.purge import PurgeResult, purge_expired
from agentqueue.cache.redis_client import build_cache_redis_client, cache_redis_url
from agentqueue.cache.request import CacheLookup, CacheRequest, CacheTags
from agentqueue.cache.single_flight import SingleFlightTicket
from agentqueue.cache.tiered import TieredCache

__all__ = [
    "CacheEntry",
    "CacheLookup",
    "CachePolicy",
    "CacheRequest",
    "CacheTags",
    "CacheTier",
    "InvalidationTarget",
    "PurgeResult",
    "SingleFlightTicket",
    "StoredEntry",
    "TierHit",
    "TieredCache",
    "build_cache_redis_client",
    "cache_key",
    "cache_redis_url",
    "is_cacheable",
    "is_deterministic",
    "is_readable",
    "policies_from_settings",
    "policy_for",
    "purge_expired",
]
