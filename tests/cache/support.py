"""Jobs, answers and a simulated provider call shared by the cache tests and their subprocesses."""

from __future__ import annotations

import time
from typing import Any

import redis

from agentqueue.cache import CacheEntry, CacheRequest, TieredCache
from agentqueue.jobs import AgentJob
from agentqueue.settings import Settings, load_settings
from agentqueue.usage import TokenUsage

PROVIDER_CALLS_KEY = "test:provider-calls"


def make_job(**overrides: Any) -> AgentJob:
    data: dict[str, Any] = {
        "agent_type": "support",
        "model": "gpt-4o-mini",
        "tenant": "acme",
        "messages": [
            {"role": "system", "content": "You answer order questions."},
            {"role": "user", "content": "Where is order 1234?"},
        ],
        "params": {"temperature": 0},
    }
    data.update(overrides)
    return AgentJob.model_validate(data)


def make_settings(redis_url: str, **overrides: Any) -> Settings:
    return load_settings(cache_redis_url=redis_url, **overrides)


def request_for(job: AgentJob, settings: Settings, *, model: str | None = None) -> CacheRequest:
    return CacheRequest.for_job(
        job, provider="simulated", model=model or job.model, settings=settings
    )


def answer(output: str = "Order 1234 ships today.", *, finish_reason: str = "stop") -> CacheEntry:
    return CacheEntry(
        output=output,
        model="gpt-4o-mini",
        provider="simulated",
        usage=TokenUsage(input_tokens=21, output_tokens=6),
        finish_reason=finish_reason,
    )


def provider_call(redis_url: str, *, latency_s: float = 0.3) -> CacheEntry:
    """Stands in for the LLM: counts itself in Redis (visible across processes), takes a while."""
    client = redis.Redis.from_url(redis_url)
    try:
        client.incr(PROVIDER_CALLS_KEY)
    finally:
        client.close()
    time.sleep(latency_s)
    return answer()


def run_job(cache: TieredCache, request: CacheRequest, redis_url: str) -> tuple[str, CacheEntry]:
    """What the worker pipeline does: look up, else single-flight around the provider call."""
    found = cache.lookup(request)
    if found.hit and found.entry is not None:
        return f"hit:{found.tier}", found.entry
    with cache.single_flight(request) as ticket:
        if ticket.entry is not None:
            return "follower", ticket.entry
        entry = provider_call(redis_url)
        ticket.complete(entry)
        return ("leader" if ticket.leader else "alone"), entry
