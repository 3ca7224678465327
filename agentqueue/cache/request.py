"""`CacheRequest` (one job's view of the cache) and `CacheLookup` (what a lookup found)."""

from __future__ import annotations

from dataclasses import dataclass

from agentqueue.cache.entry import CacheEntry
from agentqueue.cache.keys import cache_key, is_cacheable, is_readable
from agentqueue.cache.policy import CachePolicy, policy_for
from agentqueue.jobs import AgentJob
from agentqueue.setting_types.tiers import TierName
from agentqueue.settings import Settings


@dataclass(frozen=True, slots=True)
class CacheTags:
    """What an entry can be invalidated by, besides its key."""

    tenant: str
    agent_type: str
    model: str


@dataclass(frozen=True, slots=True)
class CacheRequest:
    """A job's cache key, tags, policy and whether it may read or write the cache."""

    key: str
    tenant: str
    agent_type: str
    model: str
    policy: CachePolicy
    ttl_s: int
    readable: bool
    writable: bool

    @classmethod
    def for_job(
        cls, job: AgentJob, *, provider: str, model: str, settings: Settings
    ) -> CacheRequest:
        """The request for `job` once its provider and model are resolved (`model` is never
        "auto" here: the key names the model that actually answers)."""
        policy = policy_for(job.cache.policy, settings)
        key = cache_key(
            tenant=job.tenant,
            agent_type=job.agent_type,
            provider=provider,
            model=model,
            messages=[m.model_dump(exclude_none=True) for m in job.messages],
            params=job.params.model_dump(),
            default_max_tokens=settings.default_max_tokens,
            canonical_arguments=policy.canonical_json_arguments,
        )
        enabled = settings.cache_enabled
        return cls(
            key=key,
            tenant=job.tenant,
            agent_type=job.agent_type,
            model=model,
            policy=policy,
            ttl_s=job.cache.ttl_s or policy.ttl_s,
            readable=enabled and is_readable(job),
            writable=enabled and is_cacheable(job),
        )

    @property
    def tags(self) -> CacheTags:
        return CacheTags(self.tenant, self.agent_type, self.model)


@dataclass(frozen=True, slots=True)
class CacheLookup:
    """The outcome of one lookup: `tier` says where a hit came from (`JobResult.cache_tier`)."""

    hit: bool
    tier: TierName | None = None
    entry: CacheEntry | None = None


MISS = CacheLookup(hit=False)
