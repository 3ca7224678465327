"""Per-model figures for `agentqueue stats`: limit, current use, jobs waiting, fallbacks taken
and circuit breaker state, read from the shared state in Redis."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import redis

from agentqueue.constants import FALLBACK_COUNTS_KEY, RATE_LIMIT_REGISTRY_KEY
from agentqueue.ratelimit.breaker import CircuitBreaker
from agentqueue.ratelimit.limiter import STALE_WAITER_S, USAGE_BUCKET_S, LimitKey
from agentqueue.ratelimit.limits_file import RateLimitTable


@dataclass(frozen=True, slots=True)
class ModelStats:
    provider: str
    model: str
    key_id: str
    rpm_limit: int | None
    tpm_limit: int | None
    limit_source: str  # settings, headers, settings+headers or none
    requests_last_minute: int
    tokens_last_minute: int
    waiting: int
    fallbacks_taken: int
    breaker: str
    breaker_opened: int


def _parse(name: str) -> LimitKey:
    provider, rest = name.split(":", 1)
    model, key = rest.rsplit(":", 1)
    return LimitKey(provider, model, key)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _int(value: Any) -> int | None:
    return None if value is None else int(float(value))


def collect_model_stats(client: redis.Redis, table: RateLimitTable) -> list[dict[str, Any]]:
    """One row per (provider, model, key) any worker has called, in name order."""
    now_ms = time.time() * 1000
    names = sorted(_text(n) for n in client.smembers(RATE_LIMIT_REGISTRY_KEY))
    fallbacks = {_text(k): int(v) for k, v in client.hgetall(FALLBACK_COUNTS_KEY).items()}
    breaker = CircuitBreaker(client)
    rows = []
    for name in names:
        key = _parse(name)
        configured = table.lookup(key.provider, key.model, key.key_id)
        learned = client.hmget(key.redis_key("learned"), "rpm", "tpm")
        learned_rpm, learned_tpm = _int(learned[0]), _int(learned[1])
        rpm = min((v for v in (configured.rpm, learned_rpm) if v), default=None)
        tpm = min((v for v in (configured.tpm, learned_tpm) if v), default=None)
        sources = [
            label
            for label, present in (
                ("settings", configured.known),
                ("headers", learned_rpm is not None or learned_tpm is not None),
            )
            if present
        ]
        usage = client.hgetall(key.redis_key("usage"))
        current = int(now_ms / 1000 / USAGE_BUCKET_S)
        recent = {str(b) for b in range(current - 60 // USAGE_BUCKET_S + 1, current + 1)}
        requests = tokens = 0
        for field, value in usage.items():
            bucket, kind = _text(field).split(":")
            if bucket in recent:
                if kind == "r":
                    requests += int(value)
                else:
                    tokens += int(value)
        waiting = client.zcount(key.redis_key("seen"), now_ms - STALE_WAITER_S * 1000, "+inf")
        state, opened = breaker.state(name, now_ms)
        rows.append(
            asdict(
                ModelStats(
                    provider=key.provider,
                    model=key.model,
                    key_id=key.key_id,
                    rpm_limit=rpm,
                    tpm_limit=tpm,
                    limit_source="+".join(sources) or "none",
                    requests_last_minute=requests,
                    tokens_last_minute=tokens,
                    waiting=int(waiting),
                    fallbacks_taken=fallbacks.get(key.model, 0),
                    breaker=state,
                    breaker_opened=opened,
                )
            )
        )
    return rows
