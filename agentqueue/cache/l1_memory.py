"""L1: per-process memory, a segmented LRU bounded by entries and by bytes, with TTLs.

New entries enter the probation segment; a second hit moves them to the protected segment
(80% of the budget). Victims come from the cold end of probation, so a flood of one-off
requests cannot push out entries that were asked for twice. Every operation is O(1).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from agentqueue.cache.base import InvalidationTarget, StoredEntry, TierHit
from agentqueue.cache.request import CacheTags
from agentqueue.cache.stats import CacheStats

# Memory an entry holds besides its payload and key characters (object headers of both, the
# node, the ordered-dict slot), measured with tracemalloc on CPython 3.11; counted so the byte
# limit bounds real memory, not just payload sizes.
ENTRY_OVERHEAD_BYTES = 256
PROTECTED_SHARE = 0.8


class _Node:
    __slots__ = ("expires_at", "payload", "size", "tags")

    def __init__(self, payload: bytes, size: int, expires_at: float, tags: CacheTags) -> None:
        self.payload = payload
        self.size = size
        self.expires_at = expires_at
        self.tags = tags


class L1MemoryCache:
    """Thread-safe in-process tier; `bytes_used` never exceeds `max_bytes`."""

    name = "l1"

    def __init__(
        self,
        *,
        max_entries: int,
        max_bytes: int,
        stats: CacheStats | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._protected_entries = max(1, int(max_entries * PROTECTED_SHARE))
        self._protected_bytes = int(max_bytes * PROTECTED_SHARE)
        self._stats = stats
        self._clock = clock
        self._lock = threading.Lock()
        self._probation: OrderedDict[str, _Node] = OrderedDict()
        self._protected: OrderedDict[str, _Node] = OrderedDict()
        self._bytes = 0
        self._protected_used = 0
        self._epoch = 0

    @property
    def epoch(self) -> int:
        """Changes on every invalidation; a promotion started before one must not land."""
        return self._epoch

    @property
    def bytes_used(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._probation) + len(self._protected)

    def get_many(self, keys: Sequence[str]) -> list[TierHit | None]:
        now = self._clock()
        found: list[TierHit | None] = []
        expired = 0
        with self._lock:
            for key in keys:
                node = self._protected.get(key)
                if node is not None:
                    self._protected.move_to_end(key)
                else:
                    node = self._probation.get(key)
                    if node is not None:
                        self._promote_locked(key, node)
                if node is None:
                    found.append(None)
                elif node.expires_at <= now:
                    self._remove_locked(key)
                    expired += 1
                    found.append(None)
                else:
                    found.append(TierHit(node.expires_at, node.payload))
        if expired and self._stats is not None:
            self._stats.add("l1", "expirations", expired)
        return found

    def put_many(
        self, items: Sequence[StoredEntry], *, unless_invalidated_since: int | None = None
    ) -> None:
        """Insert or replace entries; skipped if an invalidation ran since `epoch` was read."""
        evicted = 0
        with self._lock:
            if unless_invalidated_since is not None and unless_invalidated_since != self._epoch:
                return
            for item in items:
                size = len(item.payload) + len(item.key) + ENTRY_OVERHEAD_BYTES
                if size > self.max_bytes:
                    continue
                self._remove_locked(item.key)
                self._probation[item.key] = _Node(item.payload, size, item.expires_at, item.tags)
                self._bytes += size
                evicted += self._evict_locked(item.key)
        if evicted and self._stats is not None:
            self._stats.add("l1", "evictions", evicted)

    def invalidate(self, target: InvalidationTarget) -> set[str]:
        """Drop by key, or scan for tags (rare, so a scan is fine here, unlike on insert)."""
        with self._lock:
            self._epoch += 1
            if target.by_tags:
                keys = [
                    key
                    for segment in (self._probation, self._protected)
                    for key, node in segment.items()
                    if target.matches(node.tags)
                ]
            else:
                keys = [k for k in target.keys if k in self._probation or k in self._protected]
            for key in keys:
                self._remove_locked(key)
        return set(keys)

    def clear(self) -> None:
        """Forget everything (after missed invalidations, e.g. a pub/sub reconnect)."""
        with self._lock:
            self._epoch += 1
            self._probation.clear()
            self._protected.clear()
            self._bytes = 0
            self._protected_used = 0

    def shrink(self, share: float) -> int:
        """Give back `share` of the bytes in use, coldest first (memory pressure)."""
        evicted = 0
        with self._lock:
            target = int(self._bytes * (1.0 - min(1.0, max(0.0, share))))
            while self._bytes > target and len(self):
                segment = self._probation or self._protected
                self._remove_locked(next(iter(segment)))
                evicted += 1
        if evicted and self._stats is not None:
            self._stats.add("l1", "evictions", evicted)
        return evicted

    def _promote_locked(self, key: str, node: _Node) -> None:
        del self._probation[key]
        self._protected[key] = node
        self._protected_used += node.size
        # Keep protected within its share: its coldest entries get one more chance in probation.
        while self._protected and (
            self._protected_used > self._protected_bytes
            or len(self._protected) > self._protected_entries
        ):
            cold_key, cold = self._protected.popitem(last=False)
            self._protected_used -= cold.size
            self._probation[cold_key] = cold

    def _remove_locked(self, key: str) -> None:
        node = self._probation.pop(key, None)
        if node is None:
            node = self._protected.pop(key, None)
            if node is None:
                return
            self._protected_used -= node.size
        self._bytes -= node.size

    def _evict_locked(self, newest: str) -> int:
        evicted = 0
        while self._bytes > self.max_bytes or len(self) > self.max_entries:
            victim = next(iter(self._probation), None)
            if victim == newest and self._protected:
                # The newcomer is probation's only entry: give way from protected instead.
                victim = next(iter(self._protected))
            if victim is None:
                victim = next(iter(self._protected))
            self._remove_locked(victim)
            evicted += 1
        return evicted
