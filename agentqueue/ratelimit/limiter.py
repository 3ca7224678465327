"""RPM/TPM limits per (provider, model, API key) held in Redis and shared by every worker.

One atomic Lua script (GCRA: a "theoretical arrival time" per limit) rather than the `limits`
library: `limits` answers "allowed now?" for one limit at a time, while a request must take
from the request AND token limits together or from neither, be told how long to wait (so a
waiting job sleeps exactly that long instead of polling), wait behind higher-priority jobs,
and have its token cost corrected after the call. Each of those is a few lines of Lua and
one round trip.

Waiting jobs register in a sorted set ordered by priority (critical first) then arrival; a
waiter at rank k is admitted only once the limits could also admit the k jobs ahead of it,
so `low` work yields to interactive work. A waiter that stops calling (dead worker) drops
out after `STALE_WAITER_S`.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import redis

from agentqueue.constants import PRIORITIES, RATE_LIMIT_PREFIX, RATE_LIMIT_REGISTRY_KEY
from agentqueue.ratelimit.headers import observe
from agentqueue.ratelimit.limits_file import ModelLimits, RateLimitTable

log = logging.getLogger(__name__)

STALE_WAITER_S = 5.0
HEARTBEAT_S = 1.0  # a waiter re-checks at least this often, which keeps it from going stale
MIN_SLEEP_S = 0.002
STATE_TTL_S = 3600
USAGE_BUCKET_S = 10

# KEYS: tat:req, tat:tok, waiting, seen, learned, usage, registry
# ARGV: ticket, score, rpm, tpm, tokens, window_ms, stale_ms, identity, usage_bucket_s, ttl_ms
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local ticket = ARGV[1]
local stale = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[7]))
for _, m in ipairs(stale) do
  redis.call('ZREM', KEYS[3], m)
  redis.call('ZREM', KEYS[4], m)
end
local rpm = tonumber(ARGV[3])
local tpm = tonumber(ARGV[4])
local learned = redis.call('HMGET', KEYS[5], 'rpm', 'tpm', 'until')
if learned[1] then
  local l = tonumber(learned[1])
  if rpm == 0 or l < rpm then rpm = l end
end
if learned[2] then
  local l = tonumber(learned[2])
  if tpm == 0 or l < tpm then tpm = l end
end
local blocked = tonumber(learned[3] or '0')
redis.call('ZADD', KEYS[3], 'NX', tonumber(ARGV[2]), ticket)
redis.call('ZADD', KEYS[4], now, ticket)
local rank = redis.call('ZRANK', KEYS[3], ticket)
local window = tonumber(ARGV[6])
local tokens = tonumber(ARGV[5])
local wait = blocked - now
local tat_r, period_r, tat_t, period_t
if rpm > 0 then
  period_r = 60000 / rpm
  tat_r = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
  wait = math.max(wait, tat_r + period_r * (rank + 1) - now - math.max(window, period_r))
end
if tpm > 0 and tokens > 0 then
  period_t = tokens * 60000 / tpm
  tat_t = math.max(tonumber(redis.call('GET', KEYS[2]) or '0'), now)
  wait = math.max(wait, tat_t + period_t * (rank + 1) - now - math.max(window, period_t))
end
if wait > 0 then
  return {0, tostring(wait), rpm, tpm, rank}
end
local ttl = tonumber(ARGV[10])
if tat_r then redis.call('SET', KEYS[1], tostring(tat_r + period_r), 'PX', ttl) end
if tat_t then redis.call('SET', KEYS[2], tostring(tat_t + period_t), 'PX', ttl) end
redis.call('ZREM', KEYS[3], ticket)
redis.call('ZREM', KEYS[4], ticket)
local bucket = math.floor(now / 1000 / tonumber(ARGV[9]))
redis.call('HINCRBY', KEYS[6], bucket .. ':r', 1)
redis.call('HINCRBY', KEYS[6], bucket .. ':t', tokens)
redis.call('PEXPIRE', KEYS[6], 120000)
redis.call('PEXPIRE', KEYS[3], ttl)
redis.call('PEXPIRE', KEYS[4], ttl)
redis.call('SADD', KEYS[7], ARGV[8])
return {1, '0', rpm, tpm, rank}
"""

# KEYS: tat:tok, usage. ARGV: token delta, tpm, usage_bucket_s
_CORRECT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local delta = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
if tpm > 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('INCRBYFLOAT', KEYS[1], delta * 60000 / tpm)
end
local bucket = math.floor(now / 1000 / tonumber(ARGV[3]))
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HINCRBY', KEYS[2], bucket .. ':t', math.floor(delta))
end
return 1
"""

# KEYS: learned. ARGV: rpm (0: unknown), tpm, wait_ms (0: none), ttl_ms
_LEARN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
if tonumber(ARGV[1]) > 0 then redis.call('HSET', KEYS[1], 'rpm', ARGV[1]) end
if tonumber(ARGV[2]) > 0 then redis.call('HSET', KEYS[1], 'tpm', ARGV[2]) end
local wait = tonumber(ARGV[3])
if wait > 0 then
  local current = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
  redis.call('HSET', KEYS[1], 'until', tostring(math.max(current, now + wait)))
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
return 1
"""


@dataclass(frozen=True, slots=True)
class LimitKey:
    """Whose limit: a provider's model under one API key (by its id, never the key)."""

    provider: str
    model: str
    key_id: str

    @property
    def name(self) -> str:
        return f"{self.provider}:{self.model}:{self.key_id}"

    def redis_key(self, part: str) -> str:
        return f"{RATE_LIMIT_PREFIX}{self.name}:{part}"


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to make one call; `tokens` were taken and are corrected after the call."""

    key: LimitKey
    tokens: int
    rpm: int
    tpm: int
    waited_s: float


class SharedRateLimiter:
    """Admits provider calls under shared limits; see the module docstring."""

    def __init__(
        self,
        client: redis.Redis,
        table: RateLimitTable,
        *,
        key_ids: Mapping[str, str],
        window_s: float = 0.5,
    ) -> None:
        """`key_ids`: provider name -> id of the API key it uses; `window_s`: how far ahead of
        the steady pace a burst may run (smaller is smoother)."""
        self.redis = client
        self.table = table
        self.key_ids = dict(key_ids)
        self.window_ms = window_s * 1000
        self._acquire = client.register_script(_ACQUIRE)
        self._correct = client.register_script(_CORRECT)
        self._learn = client.register_script(_LEARN)
        self._learned: dict[LimitKey, tuple[int | None, int | None]] = {}

    def key_for(self, provider: str, model: str) -> LimitKey:
        return LimitKey(provider, model, self.key_ids.get(provider, "nokey"))

    def configured(self, key: LimitKey) -> ModelLimits:
        return self.table.lookup(key.provider, key.model, key.key_id)

    def acquire(
        self, key: LimitKey, tokens: int, *, priority: str, max_wait_s: float
    ) -> Permit | None:
        """Wait (sleeping, never spinning) until the call fits the limits; None if that would
        take longer than `max_wait_s`. Redis trouble lets the call through (logged): a limit
        must not stop work that the provider itself may well accept."""
        limits = self.configured(key)
        rank = PRIORITIES.index(priority) if priority in PRIORITIES else len(PRIORITIES)
        ticket = uuid.uuid4().hex
        score = rank * 1e13 + time.time() * 1000
        started = time.monotonic()
        keys = [
            key.redis_key("tat:req"),
            key.redis_key("tat:tok"),
            key.redis_key("waiting"),
            key.redis_key("seen"),
            key.redis_key("learned"),
            key.redis_key("usage"),
            RATE_LIMIT_REGISTRY_KEY,
        ]
        args: list[str | int | float] = [
            ticket,
            score,
            limits.rpm or 0,
            limits.tpm or 0,
            max(0, tokens),
            self.window_ms,
            STALE_WAITER_S * 1000,
            key.name,
            USAGE_BUCKET_S,
            STATE_TTL_S * 1000,
        ]
        granted = False
        try:
            while True:
                allowed, wait_ms, rpm, tpm, _ = self._acquire(keys=keys, args=args)
                waited = time.monotonic() - started
                if int(allowed):
                    granted = True
                    return Permit(key, max(0, tokens), int(rpm), int(tpm), waited)
                wait_s = float(wait_ms) / 1000
                if waited + wait_s > max_wait_s:
                    return None
                time.sleep(min(max(wait_s, MIN_SLEEP_S), HEARTBEAT_S))
        except redis.RedisError as error:
            log.warning("rate limiter unavailable (%s); calling unlimited", type(error).__name__)
            granted = True
            return Permit(key, max(0, tokens), 0, 0, time.monotonic() - started)
        finally:
            if not granted:
                self._leave(key, ticket)

    def _leave(self, key: LimitKey, ticket: str) -> None:
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.zrem(key.redis_key("waiting"), ticket)
            pipe.zrem(key.redis_key("seen"), ticket)
            pipe.execute()
        except redis.RedisError:
            pass  # the waiter goes stale and is purged by the next caller

    def correct(
        self, permit: Permit, actual_tokens: int, *, pipe: redis.client.Pipeline | None = None
    ) -> None:
        """Give back (or take more of) the tokens a call took, once its real usage is known.
        With `pipe`, the correction is only queued there."""
        delta = actual_tokens - permit.tokens
        if not delta:
            return
        keys = [permit.key.redis_key("tat:tok"), permit.key.redis_key("usage")]
        args = [delta, permit.tpm, USAGE_BUCKET_S]
        if pipe is not None:
            self._correct(keys=keys, args=args, client=pipe)
            return
        # On a Redis error the estimate stands: nothing is lost but a little accuracy.
        with contextlib.suppress(redis.RedisError):
            self._correct(keys=keys, args=args)

    def observe(self, key: LimitKey, status: int, headers: Mapping[str, str]) -> None:
        """Learn limits from a reply's headers, and pause everyone a 429 asks to wait."""
        seen = observe(status, headers)
        learned = (seen.rpm, seen.tpm)
        news = any(learned) and self._learned.get(key) != learned
        if not news and not seen.wait_s:
            return
        try:
            self._learn(
                keys=[key.redis_key("learned")],
                args=[seen.rpm or 0, seen.tpm or 0, (seen.wait_s or 0) * 1000, STATE_TTL_S * 1000],
            )
        except redis.RedisError:
            return
        if any(learned):
            self._learned[key] = learned
