"""`CacheEntry`: the cached answer of one request, serialised as compact JSON (never pickle)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agentqueue.providers.base import ProviderResponse

# The C scanner without `json.loads`'s wrapper: cache hits decode on the hot path.
_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]

# Only complete answers are worth replaying; "length" is truncated and "error" is a failure.
STORABLE_FINISH_REASONS = frozenset({"stop", "tool_calls"})


class EntryDecodeError(ValueError):
    """A stored value is not a cache entry (corrupt or written by an incompatible version)."""


@dataclass(frozen=True, slots=True)
class CachedUsage:
    """Token counts of the original provider call: what a hit saves."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """What a cache hit gives back instead of a provider call."""

    output: str
    model: str
    provider: str
    usage: CachedUsage = field(default_factory=CachedUsage)
    finish_reason: str = "stop"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def from_response(cls, response: ProviderResponse, *, provider: str) -> CacheEntry:
        """The entry for a provider's answer (store it only if `storable`)."""
        return cls(
            output=response.output,
            model=response.model,
            provider=provider,
            usage=CachedUsage(
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens,
                cached_input_tokens=response.usage.cached_input_tokens,
            ),
            finish_reason=response.finish_reason,
        )

    @property
    def storable(self) -> bool:
        """False for truncated or failed outputs, which must never be replayed."""
        return self.finish_reason in STORABLE_FINISH_REASONS

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON; the representation every tier stores and measures."""
        usage = self.usage
        return json.dumps(
            {
                "output": self.output,
                "model": self.model,
                "provider": self.provider,
                "usage": [usage.input_tokens, usage.output_tokens, usage.cached_input_tokens],
                "finish_reason": self.finish_reason,
                "created_at": self.created_at.isoformat(),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, payload: bytes) -> CacheEntry:
        """Parse `to_json` output.

        Raises:
            EntryDecodeError: the payload is not a cache entry.
        """
        try:
            text = payload.decode()
            data: dict[str, Any]
            data, end = _scan_json(text, 0)
            if end != len(text):
                raise ValueError("trailing data after the entry")
            usage = data["usage"]
            return cls(
                output=data["output"],
                model=data["model"],
                provider=data["provider"],
                usage=CachedUsage(usage[0], usage[1], usage[2]),
                finish_reason=data["finish_reason"],
                created_at=datetime.fromisoformat(data["created_at"]),
            )
        except (ValueError, KeyError, IndexError, TypeError, StopIteration) as exc:
            raise EntryDecodeError(f"not a cache entry: {exc}") from None
