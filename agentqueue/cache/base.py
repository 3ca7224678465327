"""The `CacheTier` protocol and the plain data that crosses it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from agentqueue.cache.entry import CacheEntry
from agentqueue.cache.request import CacheTags


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry on its way into a tier: `payload` is `CacheEntry.to_json()`, computed once."""

    key: str
    payload: bytes
    expires_at: float  # Unix seconds; tiers share the wall clock
    tags: CacheTags
    policy: str = "agent_response"
    entry: CacheEntry | None = None  # the decoded form, when the caller already has it


@dataclass(frozen=True, slots=True)
class TierHit:
    """What a tier found for a key: its stored bytes, or the entry when the tier builds one
    anyway (L3); each form is derived only if needed (decode for the caller, encode to promote)."""

    expires_at: float
    payload: bytes | None = None
    entry: CacheEntry | None = None

    def decoded(self) -> CacheEntry:
        if self.entry is not None:
            return self.entry
        assert self.payload is not None, "a TierHit carries a payload or an entry"
        return CacheEntry.from_json(self.payload)

    def encoded(self) -> bytes:
        if self.payload is not None:
            return self.payload
        assert self.entry is not None, "a TierHit carries a payload or an entry"
        return self.entry.to_json()


@dataclass(frozen=True, slots=True)
class InvalidationTarget:
    """Entries to drop: these keys, or every entry matching all the given tags."""

    keys: tuple[str, ...] = ()
    tenant: str | None = None
    agent_type: str | None = None
    model: str | None = None

    @property
    def by_tags(self) -> bool:
        return not self.keys

    def matches(self, tags: CacheTags) -> bool:
        return (
            (self.tenant is None or tags.tenant == self.tenant)
            and (self.agent_type is None or tags.agent_type == self.agent_type)
            and (self.model is None or tags.model == self.model)
        )


class CacheTier(Protocol):
    """One storage level. Implementations never raise to callers: failures read as misses."""

    name: str

    def get_many(self, keys: Sequence[str]) -> list[TierHit | None]: ...

    def put_many(self, items: Sequence[StoredEntry]) -> None: ...

    def invalidate(self, target: InvalidationTarget) -> set[str]:
        """Drop matching entries; return the keys known to have been removed."""
        ...
