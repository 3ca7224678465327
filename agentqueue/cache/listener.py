"""`CacheListener`: one daemon thread per process that receives the cache's pub/sub messages
(invalidations, single-flight results) and runs the periodic statistics flush."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import redis

from agentqueue.backoff import backoff_s
from agentqueue.constants import KEY_PREFIX

logger = logging.getLogger("agentqueue.cache")

POLL_S = 0.5
FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0


class CacheListener:
    """Dispatches messages by channel; after a lost subscription calls `on_resubscribe`, because
    messages published while it was away are gone (the L1 must then be emptied)."""

    def __init__(
        self,
        client: redis.Redis,
        handlers: Mapping[str, Callable[[bytes], None]],
        *,
        on_resubscribe: Callable[[], None],
        tick: Callable[[], None],
        tick_interval_s: float,
    ) -> None:
        self._client = client
        # A channel of its own, so that `stop` wakes the thread from its wait for a message.
        self._wake_channel = f"{KEY_PREFIX}listener-wake:{uuid.uuid4().hex}"
        self._handlers = {**handlers, self._wake_channel: _ignore}
        self._on_resubscribe = on_resubscribe
        self._tick = tick
        self._tick_interval_s = tick_interval_s
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    def start(self, *, wait_s: float = 5.0) -> bool:
        """Start the thread; wait up to `wait_s` for the subscription. Never raises: with Redis
        down it keeps retrying in the background and returns False."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="agentqueue-cache-listener", daemon=True
            )
            self._thread.start()
        return self._subscribed.wait(wait_s)

    def stop(self, *, wait_s: float = 5.0) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):  # Redis away: the thread wakes within POLL_S
            self._client.publish(self._wake_channel, b"")
        if self._thread is not None:
            self._thread.join(wait_s)
            self._thread = None

    def _run(self) -> None:
        failures = 0  # in a row, since the last subscription
        ever_subscribed = False
        next_tick = time.monotonic() + self._tick_interval_s
        while not self._stop.is_set():
            pubsub = self._client.pubsub()
            try:
                self._subscribe(pubsub)
                if ever_subscribed:
                    self._on_resubscribe()
                if failures:
                    logger.info("cache listener subscribed again")
                ever_subscribed = True
                failures = 0
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=POLL_S)
                    if message is not None and message.get("type") == "subscribe":
                        # redis-py reconnected and resubscribed by itself: we were deaf a while.
                        self._on_resubscribe()
                    elif message is not None:
                        self._dispatch(message)
                    if time.monotonic() >= next_tick:
                        next_tick = time.monotonic() + self._tick_interval_s
                        self._safe_tick()
            except Exception as exc:  # the listener must outlive any Redis outage
                self._subscribed.clear()
                failures += 1
                # One warning per outage; the retries that follow are routine.
                logger.log(
                    logging.WARNING if failures == 1 else logging.DEBUG,
                    "cache listener lost Redis (%s); other workers' invalidations cannot reach "
                    "this L1 until it is back, retrying every %.1fs at most",
                    type(exc).__name__,
                    MAX_BACKOFF_S,
                )
                self._stop.wait(backoff_s(failures, base_s=FIRST_BACKOFF_S, max_s=MAX_BACKOFF_S))
            finally:
                # Closing a broken connection may fail again; there is nothing left to do.
                with contextlib.suppress(Exception):
                    pubsub.close()

    def _subscribe(self, pubsub: Any) -> None:
        pubsub.subscribe(*self._handlers)
        pending = set(self._handlers)
        deadline = time.monotonic() + 5.0
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError("no subscription confirmation from Redis")
            message = pubsub.get_message(timeout=0.5)
            if message and message["type"] == "subscribe":
                pending.discard(_text(message["channel"]))
        self._subscribed.set()

    def _dispatch(self, message: dict[str, Any]) -> None:
        handler = self._handlers.get(_text(message.get("channel", b"")))
        if handler is None or message.get("type") != "message":
            return
        try:
            handler(message["data"])
        except Exception:  # one bad message must not stop the listener
            logger.exception("cache listener could not handle a message")

    def _safe_tick(self) -> None:
        try:
            self._tick()
        except Exception:  # statistics are best effort
            logger.debug("cache statistics flush failed", exc_info=True)


def _ignore(_: bytes) -> None:
    pass


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
