"""`CacheEntry`: the cached answer of one request, serialised as compact JSON (never pickle)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agentqueue.usage import TokenUsage

# The C scanner without `json.loads`'s wrapper: cache hits decode on the hot path.
_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]

# Only complete answers are worth replaying; "length" is truncated and "error" is a failure.
STORABLE_FINISH_REASONS = frozenset({"stop", "tool_calls"})


class EntryDecodeError(ValueError):
    """A stored value is not a cache entry (corrupt or written by an incompatible version)."""


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """What a cache hit gives back instead of a provider call."""

    output: str
    model: str
    provider: str
    usage: TokenUsage = field(default_factory=TokenUsage)
    finish_reason: str = "stop"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

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
                usage=TokenUsage(usage[0], usage[1], usage[2]),
                finish_reason=data["finish_reason"],
                created_at=datetime.fromisoformat(data["created_at"]),
            )
        except (ValueError, KeyError, IndexError, TypeError, StopIteration) as exc:
            raise EntryDecodeError(f"not a cache entry: {exc}") from None
