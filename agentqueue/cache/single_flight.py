"""Single-flight: identical requests that miss together make one provider call.

Inside a process, the first thread for a key leads and the others wait on an event. Across
processes, that thread takes a Redis lock (`SET NX PX`); whoever holds it calls the provider,
then writes the result to a short-lived handoff key and publishes the key. Waiting processes
wake on that message (or poll, if no listener runs) and read the handoff. Every wait is
bounded; after it, or when the leader fails, followers proceed alone.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import redis

from agentqueue.cache.codec import EnvelopeError, pack, unpack
from agentqueue.cache.degrade import TierGuard
from agentqueue.cache.entry import CacheEntry, EntryDecodeError
from agentqueue.cache.request import CacheRequest
from agentqueue.cache.stats import CacheStats
from agentqueue.constants import (
    SINGLE_FLIGHT_HANDOFF_TTL_MS,
    SINGLE_FLIGHT_LOCK_PREFIX,
    SINGLE_FLIGHT_RESULT_PREFIX,
)

Store = Callable[[Sequence[tuple[CacheRequest, CacheEntry]]], None]

FIRST_POLL_S = 0.005
MAX_POLL_S = 0.1
# Delete the lock only if it is still ours (it may have expired and been taken by another).
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass
class SingleFlightTicket:
    """`leader`: call the provider, then `complete(entry)`. A follower with `entry` has its
    answer; a follower without one waited in vain and calls the provider alone (then
    `complete` too, which stores the result)."""

    leader: bool
    entry: CacheEntry | None = None
    _finish: Callable[[CacheEntry], None] | None = field(default=None, repr=False)
    completed: bool = False

    def complete(self, entry: CacheEntry) -> None:
        """Store the provider's answer per the request's policy and wake everyone waiting."""
        if self.completed:
            return
        self.completed = True
        if self._finish is not None:
            self._finish(entry)


class _LocalFlight:
    __slots__ = ("done", "entry")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.entry: CacheEntry | None = None

    def settle(self, entry: CacheEntry | None) -> None:
        if entry is not None and entry.storable:
            self.entry = entry
        self.done.set()


class SingleFlight:
    """Coordinates identical misses across the threads of this process and across processes."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        guard: TierGuard,
        stats: CacheStats,
        wait_s: float,
        channel: str,
        compress_min_bytes: int,
    ) -> None:
        self._client = client
        self._guard = guard
        self._stats = stats
        self._wait_s = wait_s
        self.channel = channel
        self._compress_min_bytes = compress_min_bytes
        self._lock = threading.Lock()
        self._flights: dict[str, _LocalFlight] = {}
        self._waiters: dict[str, threading.Event] = {}

    @contextmanager
    def flight(self, request: CacheRequest, store: Store) -> Iterator[SingleFlightTicket]:
        """A ticket for `request`; see `SingleFlightTicket`. Never raises for Redis trouble."""

        def store_only(entry: CacheEntry) -> None:
            store([(request, entry)])

        if not (request.readable and request.writable):
            # It may not reuse another call's answer, so it neither waits nor makes others wait.
            yield SingleFlightTicket(leader=True, _finish=store_only)
            return
        with self._lock:
            flight = self._flights.get(request.key)
            local_leader = flight is None
            if flight is None:
                flight = self._flights[request.key] = _LocalFlight()
        if not local_leader:
            yield self._follow_local(flight, store_only)
            return
        token: str | None = None
        ticket: SingleFlightTicket | None = None
        try:
            ticket, token = self._join(request, flight, store, store_only)
            yield ticket
        finally:
            if token is not None and ticket is not None and not ticket.completed:
                self._hand_over(request, token, None)  # leader failed: followers go alone
            flight.settle(None)  # no-op if already settled
            with self._lock:
                if self._flights.get(request.key) is flight:
                    del self._flights[request.key]

    def notify(self, data: bytes) -> None:
        """A leader somewhere finished `data` (a cache key): wake our waiter (listener thread)."""
        with self._lock:
            event = self._waiters.get(data.decode())
        if event is not None:
            event.set()

    def _follow_local(
        self, flight: _LocalFlight, store_only: Callable[[CacheEntry], None]
    ) -> SingleFlightTicket:
        settled = flight.done.wait(self._wait_s)
        if settled and flight.entry is not None:
            self._stats.add("single_flight", "followers_served")
            return SingleFlightTicket(leader=False, entry=flight.entry)
        self._stats.add("single_flight", "proceeded_alone" if settled else "timeouts")
        return SingleFlightTicket(leader=False, _finish=store_only)

    def _join(
        self,
        request: CacheRequest,
        flight: _LocalFlight,
        store: Store,
        store_only: Callable[[CacheEntry], None],
    ) -> tuple[SingleFlightTicket, str | None]:
        key = request.key
        token = uuid.uuid4().hex
        acquired, handoff = False, None
        if self._guard.available():
            try:
                pipe = self._client.pipeline(transaction=False)
                pipe.set(
                    f"{SINGLE_FLIGHT_LOCK_PREFIX}{key}",
                    token,
                    nx=True,
                    px=int(self._wait_s * 1000),
                )
                pipe.get(f"{SINGLE_FLIGHT_RESULT_PREFIX}{key}")
                acquired, handoff = pipe.execute()
            except Exception as exc:  # no Redis: still lead this process's threads
                self._guard.failed("single-flight lock", exc)
                return self._lead(request, flight, store, None), None
        else:
            return self._lead(request, flight, store, None), None
        # A leader finished between our cache miss and now: take its answer.
        entry = self._decode(handoff)
        if entry is not None:
            if acquired:
                self._hand_over(request, token, None)
            flight.settle(entry)
            self._stats.add("single_flight", "followers_served")
            return SingleFlightTicket(leader=False, entry=entry), None
        if acquired:
            return self._lead(request, flight, store, token), token
        entry = self._wait_for_leader(key)
        flight.settle(entry)
        if entry is not None:
            self._stats.add("single_flight", "followers_served")
            return SingleFlightTicket(leader=False, entry=entry), None
        return SingleFlightTicket(leader=False, _finish=store_only), None

    def _lead(
        self, request: CacheRequest, flight: _LocalFlight, store: Store, token: str | None
    ) -> SingleFlightTicket:
        self._stats.add("single_flight", "leaders")

        def finish(entry: CacheEntry) -> None:
            store([(request, entry)])
            flight.settle(entry)
            if token is not None:
                self._hand_over(request, token, entry)

        return SingleFlightTicket(leader=True, _finish=finish)

    def _hand_over(self, request: CacheRequest, token: str, entry: CacheEntry | None) -> None:
        """Publish the answer (if it may be shared), release our lock, wake the followers."""
        try:
            pipe = self._client.pipeline(transaction=False)
            if entry is not None and entry.storable:
                value = pack(
                    entry.to_json(),
                    time.time() + request.ttl_s,
                    compress_min_bytes=self._compress_min_bytes,
                )
                pipe.set(
                    f"{SINGLE_FLIGHT_RESULT_PREFIX}{request.key}",
                    value,
                    px=SINGLE_FLIGHT_HANDOFF_TTL_MS,
                )
            # EVAL, not a registered script: those cost a SCRIPT EXISTS round trip per pipeline.
            pipe.eval(_RELEASE_LUA, 1, f"{SINGLE_FLIGHT_LOCK_PREFIX}{request.key}", token)
            pipe.publish(self.channel, request.key)
            pipe.execute()
        except Exception as exc:  # followers fall back to polling, then their bounded wait
            self._guard.failed("single-flight handoff", exc)

    def _wait_for_leader(self, key: str) -> CacheEntry | None:
        event = threading.Event()
        with self._lock:
            self._waiters[key] = event
        try:
            deadline = time.monotonic() + self._wait_s
            poll = FIRST_POLL_S
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._stats.add("single_flight", "timeouts")
                    return None
                event.wait(min(remaining, poll))
                event.clear()
                poll = min(poll * 2, MAX_POLL_S)
                try:
                    pipe = self._client.pipeline(transaction=False)
                    pipe.get(f"{SINGLE_FLIGHT_RESULT_PREFIX}{key}")
                    pipe.exists(f"{SINGLE_FLIGHT_LOCK_PREFIX}{key}")
                    handoff, locked = pipe.execute()
                except Exception as exc:
                    self._guard.failed("single-flight wait", exc)
                    self._stats.add("single_flight", "proceeded_alone")
                    return None
                entry = self._decode(handoff)
                if entry is not None:
                    return entry
                if not locked:  # the leader gave up or its answer was not shareable
                    self._stats.add("single_flight", "proceeded_alone")
                    return None
        finally:
            with self._lock:
                if self._waiters.get(key) is event:
                    del self._waiters[key]

    def _decode(self, value: bytes | None) -> CacheEntry | None:
        if value is None:
            return None
        try:
            payload, expires_at = unpack(value)
            if expires_at <= time.time():
                return None
            return CacheEntry.from_json(payload)
        except (EnvelopeError, EntryDecodeError) as exc:
            self._guard.failed("single-flight decode", exc, rest=False)
            return None
