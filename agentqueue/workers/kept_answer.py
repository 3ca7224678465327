"""`KeptAnswer`: a paid answer journaled until it is settled, with the calls of unknown outcome
its job had made besides, so that a retry settling from it charges them too."""

from __future__ import annotations

import json
from dataclasses import dataclass

from agentqueue.cache.entry import CacheEntry, EntryDecodeError

_REPEATED_KEY = "possibly_repeated"
_CARRIED_KEY = "carried_over"


@dataclass(frozen=True, slots=True)
class KeptAnswer:
    """`possibly_repeated`: earlier requests of the answered call that failed in transit after
    the provider may have received them; `carried_over`: an attempt before the one that got
    the answer may have paid for a call without keeping its answer."""

    entry: CacheEntry
    possibly_repeated: int = 0
    carried_over: bool = False

    def to_json(self) -> bytes:
        """The entry's own JSON (what a plain `CacheEntry` reads), plus the unknown calls."""
        payload = self.entry.to_json()
        if not self.possibly_repeated and not self.carried_over:
            return payload
        data = json.loads(payload)
        if self.possibly_repeated:
            data[_REPEATED_KEY] = self.possibly_repeated
        if self.carried_over:
            data[_CARRIED_KEY] = True
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, payload: bytes) -> KeptAnswer:
        """Parse `to_json` output (or a bare `CacheEntry`).

        Raises:
            EntryDecodeError: the payload is not a kept answer.
        """
        entry = CacheEntry.from_json(payload)
        # Outside a JSON string a key's quotes are bare; inside one they would be escaped.
        if not any(f',"{key}":'.encode() in payload for key in (_REPEATED_KEY, _CARRIED_KEY)):
            return cls(entry)
        try:
            data = json.loads(payload)
            repeated = int(data.get(_REPEATED_KEY) or 0)
            carried = data.get(_CARRIED_KEY) is True
        except (ValueError, TypeError, AttributeError) as exc:
            raise EntryDecodeError(f"not a kept answer: {exc}") from None
        return cls(entry, max(0, repeated), carried)
