"""A circuit breaker per endpoint (provider, model, API key), shared by every worker in Redis.

`failure_threshold` outage failures within `window_s` open the circuit: for `cooling_s` no
call is made (jobs fall back or wait). Then one caller gets the probe; its success closes the
circuit, its failure opens it for another cooling period. Everyone else keeps waiting while
the probe is out (for at most `cooling_s`, in case its worker died). Every success is
recorded, so a failure can tell whether the endpoint or only its own request is broken.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Literal

import redis

from agentqueue.constants import BREAKER_PREFIX

log = logging.getLogger(__name__)

BreakerState = Literal["closed", "open", "half_open"]

LOCAL_TRUST_S = 0.25

# KEYS: breaker hash. ARGV: cooling_ms. Returns {verdict, wait_ms}: 0 call, 1 probe, 2 wait.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local opened = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if opened == 0 then return {0, '0'} end
if now < opened then return {2, tostring(opened - now)} end
local probe = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
if now < probe then return {2, tostring(probe - now)} end
redis.call('HSET', KEYS[1], 'probe_until', tostring(now + tonumber(ARGV[1])))
return {1, '0'}
"""

# KEYS: breaker hash. ARGV: threshold, window_ms, cooling_ms, call_started_ms.
# Returns {opened now (0/1), another call succeeded since this one started (0/1)}.
_FAIL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local ok = tonumber(redis.call('HGET', KEYS[1], 'ok') or '0')
local healthy = 0
if ok > tonumber(ARGV[4]) then healthy = 1 end
local opened = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
redis.call('PEXPIRE', KEYS[1], 86400000)
if opened > 0 and now >= opened then
  -- the probe (or a call racing it) failed: cool down again
  redis.call('HSET', KEYS[1], 'open_until', tostring(now + tonumber(ARGV[3])), 'probe_until', '0')
  redis.call('HINCRBY', KEYS[1], 'opened', 1)
  return {1, healthy}
end
if opened > 0 then return {0, healthy} end
local since = tonumber(redis.call('HGET', KEYS[1], 'since') or '0')
if now - since > tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'since', tostring(now), 'failures', 0)
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if failures >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'open_until', tostring(now + tonumber(ARGV[3])), 'failures', 0)
  redis.call('HINCRBY', KEYS[1], 'opened', 1)
  return {1, healthy}
end
return {0, healthy}
"""

# KEYS: breaker hash.
_SUCCEED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local f = redis.call('HMGET', KEYS[1], 'open_until', 'failures')
if f[1] or (f[2] and f[2] ~= '0') then
  redis.call('HDEL', KEYS[1], 'open_until', 'probe_until', 'failures', 'since')
end
redis.call('HSET', KEYS[1], 'ok', tostring(now))
redis.call('PEXPIRE', KEYS[1], 86400000)
return 1
"""


@dataclass(frozen=True, slots=True)
class BreakerVerdict:
    """`call` (closed), `probe` (the one trial call) or `wait` `wait_s` (open)."""

    action: Literal["call", "probe", "wait"]
    wait_s: float = 0.0


class CircuitBreaker:
    """Shared breakers by endpoint name; Redis trouble leaves every circuit closed."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        failure_threshold: int = 5,
        window_s: float = 30.0,
        cooling_s: float = 15.0,
    ) -> None:
        self.redis = client
        self.failure_threshold = failure_threshold
        self.window_ms = window_s * 1000
        self.cooling_ms = cooling_s * 1000
        self._admit = client.register_script(_ADMIT)
        # Per process: when each endpoint was last seen closed. A closed circuit is trusted
        # for `LOCAL_TRUST_S`, so a healthy endpoint costs no extra round trip per call.
        self._closed_at: dict[str, float] = {}
        self._fail = client.register_script(_FAIL)
        self._succeed = client.register_script(_SUCCEED)

    @staticmethod
    def key(endpoint: str) -> str:
        return f"{BREAKER_PREFIX}{endpoint}"

    def admit(self, endpoint: str) -> BreakerVerdict:
        if time.monotonic() - self._closed_at.get(endpoint, -LOCAL_TRUST_S) < LOCAL_TRUST_S:
            return BreakerVerdict("call")
        try:
            verdict, wait_ms = self._admit(keys=[self.key(endpoint)], args=[self.cooling_ms])
        except redis.RedisError:
            return BreakerVerdict("call")
        if int(verdict) == 0:
            self._closed_at[endpoint] = time.monotonic()
            return BreakerVerdict("call")
        if int(verdict) == 1:
            log.info("circuit of %s half-open: probing with one request", endpoint)
            return BreakerVerdict("probe")
        return BreakerVerdict("wait", float(wait_ms) / 1000)

    def failed(self, endpoint: str, *, call_started_ms: float) -> bool:
        """Count an outage failure; True if another call to the endpoint succeeded after this
        one started (then the failure is this request's own, not the endpoint's)."""
        self._closed_at.pop(endpoint, None)
        try:
            opened, healthy = self._fail(
                keys=[self.key(endpoint)],
                args=[self.failure_threshold, self.window_ms, self.cooling_ms, call_started_ms],
            )
        except redis.RedisError:
            return True
        if int(opened):
            log.warning(
                "circuit of %s opened: no calls for %.0f s", endpoint, self.cooling_ms / 1000
            )
        return bool(int(healthy))

    def succeeded(self, endpoint: str, *, pipe: redis.client.Pipeline | None = None) -> None:
        """A call worked: close the circuit, note the time. With `pipe`, only queued there."""
        if pipe is not None:
            self._succeed(keys=[self.key(endpoint)], client=pipe)
            return
        with contextlib.suppress(redis.RedisError):
            self._succeed(keys=[self.key(endpoint)])

    def confirms_outage(self, endpoint: str, *, since_ms: float) -> bool | None:
        """True if the circuit is open (the endpoint is down), False if a call succeeded
        after `since_ms` (it is not), None while neither is known. Redis trouble: False."""
        try:
            fields = self.redis.hmget(self.key(endpoint), "open_until", "ok")
        except redis.RedisError:
            return False
        if fields[0] is not None:
            return True
        if fields[1] is not None and float(fields[1]) > since_ms:
            return False
        return None

    def state(self, endpoint: str, now_ms: float) -> tuple[BreakerState, int]:
        """The state for `agentqueue stats`, and how often the circuit has opened."""
        fields = self.redis.hgetall(self.key(endpoint))
        opened = float(fields.get(b"open_until", 0) or 0)
        times = int(fields.get(b"opened", 0) or 0)
        if not opened:
            return "closed", times
        return ("open" if now_ms < opened else "half_open"), times
