"""Per-model RPM/TPM limits of the LLM test server, answered like OpenAI: 429 + x-ratelimit-*.

Each limit is a token bucket refilled continuously at `limit / 60` per second. Like the real
APIs (which quantise a per-minute limit into shorter periods) a bucket holds only `burst_s`
seconds' worth, so a client sending a minute's requests in the first second is refused
rather than served.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from agentqueue.providers.simulated import count_tokens

MESSAGE_OVERHEAD_TOKENS = 4


@dataclass
class _Bucket:
    per_minute: int
    burst_s: float
    level: float = field(init=False)
    at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.level = self.capacity

    @property
    def capacity(self) -> float:
        return max(1.0, self.per_minute * self.burst_s / 60.0)

    @property
    def rate_per_s(self) -> float:
        return self.per_minute / 60.0

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.at)
        self.level = min(self.capacity, self.level + elapsed * self.rate_per_s)
        self.at = max(self.at, now)

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` fits (after `refill`)."""
        missing = min(amount, self.capacity) - self.level
        return 0.0 if missing <= 0 else missing / self.rate_per_s

    def reset_s(self) -> float:
        return (self.capacity - self.level) / self.rate_per_s


@dataclass(frozen=True)
class LimitDecision:
    """Whether the request may be served, and the headers to send either way."""

    allowed: bool
    headers: dict[str, str]
    retry_after_s: float = 0.0


def request_tokens(body: dict[str, Any]) -> int:
    """What a request costs against TPM, as OpenAI counts it: prompt tokens + max output."""
    prompt = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        prompt += count_tokens(str(content or "")) + MESSAGE_OVERHEAD_TOKENS
    bound = body.get("max_tokens") or body.get("max_completion_tokens") or 0
    return prompt + (int(bound) if isinstance(bound, int) else 0)


def _duration(seconds: float) -> str:
    """OpenAI's reset format: `1s`, `6m0s`, `20ms`."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.0f}s" if minutes else f"{rest:.3g}s"


class ServerRateLimits:
    """RPM/TPM buckets by model; thread-safe. A model without a limit is never refused."""

    def __init__(self, burst_s: float = 1.0) -> None:
        self.burst_s = burst_s
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def set(self, model: str, *, rpm: int | None = None, tpm: int | None = None) -> None:
        with self._lock:
            for kind, value in (("requests", rpm), ("tokens", tpm)):
                if value is None:
                    self._buckets.pop((model, kind), None)
                else:
                    self._buckets[(model, kind)] = _Bucket(int(value), self.burst_s)

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()

    def describe(self) -> dict[str, dict[str, int]]:
        with self._lock:
            found: dict[str, dict[str, int]] = {}
            for (model, kind), bucket in self._buckets.items():
                found.setdefault(model, {})[kind] = bucket.per_minute
            return found

    def take(self, model: str, tokens: int, now: float | None = None) -> LimitDecision:
        """Take one request and `tokens` from the model's buckets, or none if either is short."""
        moment = time.monotonic() if now is None else now
        with self._lock:
            wanted = {
                kind: (bucket, 1.0 if kind == "requests" else float(tokens))
                for (name, kind), bucket in self._buckets.items()
                if name == model
            }
            if not wanted:
                return LimitDecision(True, {})
            for bucket, _ in wanted.values():
                bucket.refill(moment)
            wait_s = max(bucket.wait_for(amount) for bucket, amount in wanted.values())
            allowed = wait_s <= 0
            if allowed:
                for bucket, amount in wanted.values():
                    bucket.level -= amount
            headers = {}
            for kind, (bucket, _) in wanted.items():
                headers[f"x-ratelimit-limit-{kind}"] = str(bucket.per_minute)
                headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, math.floor(bucket.level)))
                headers[f"x-ratelimit-reset-{kind}"] = _duration(bucket.reset_s())
        if not allowed:
            headers["retry-after"] = str(max(1, math.ceil(wait_s)))
            headers["retry-after-ms"] = str(max(1, math.ceil(wait_s * 1000)))
        return LimitDecision(allowed, headers, wait_s)
