"""No message can kill a worker: malformed or hostile queue items are rejected, never restored.

Three layers, each where the failure happens:

- `GuardedTransport` (kombu's Redis transport): an item that is not JSON, not a kombu message
  (a list, headers as a string, a body that is not base64, ...) or whose handling raises is
  acknowledged (removed from the unacked hash) and logged with its delivery tag. Without it,
  kombu raises inside the event loop and the worker process exits; the item comes back on
  restart (a poison loop).
- `GuardedRequest`: header values Celery only reads after reserving the request (`timelimit`)
  or that break its body parsing are turned into `InvalidTaskError` while the request is
  built, so Celery's own `on_invalid_task` rejects the message before anything is reserved.
- `GuardedConsumer`: logs every refusal with its delivery tag.

`guarded` puts a connection on `GuardedTransport` (for `redis://` and `redis+socket://` alike);
the app (`workers/app_factory.py`) does it for every connection it opens: the worker's
consuming one, its events, the client's publishes.

The guarded channel also keeps one Redis client per connection pool. kombu builds a new
`redis.Redis` for every ack, publish and event (about 60 µs of the GIL each with redis-py 8,
9% of a busy worker's time); a client only borrows a pooled connection per command and is safe
to share between threads, so one per pool does the same work.
"""

from __future__ import annotations

import contextlib
import logging
import math
from queue import Empty
from typing import Any

from celery import Task
from celery.exceptions import InvalidTaskError
from celery.worker import state as worker_state
from celery.worker.consumer import Consumer
from celery.worker.request import Request
from kombu.transport import redis as kombu_redis
from kombu.utils.objects import cached_property

log = logging.getLogger(__name__)

MAX_LOGGED_ITEM_CHARS = 200


def _delivery_tag(raw: object) -> object:
    properties = raw.get("properties") if isinstance(raw, dict) else None
    return properties.get("delivery_tag") if isinstance(properties, dict) else None


def _preview(raw: object) -> str:
    text = repr(raw)
    return text if len(text) <= MAX_LOGGED_ITEM_CHARS else text[:MAX_LOGGED_ITEM_CHARS] + "..."


def log_rejected(delivery_tag: object, reason: str, raw: object = None) -> None:
    """The one log line of a rejected message (the item is cut short: it may be huge)."""
    log.error(
        "rejected a malformed message (delivery tag %s): %s; it was acknowledged and "
        "will not be redelivered. item: %s",
        delivery_tag if delivery_tag is not None else "none",
        reason,
        _preview(raw) if raw is not None else "-",
    )


class GuardedChannel(kombu_redis.Channel):
    _shared_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:  # the event loop's own client: kombu keeps it for the channel
            return super()._create_client(asynchronous=True)  # type: ignore[misc]
        pool = self.pool
        client = self._shared_client
        if client is None or client.connection_pool is not pool:
            client = self._shared_client = super()._create_client()  # type: ignore[misc]
        return client

    def _brpop_read(self, **options: Any) -> bool:
        try:
            return bool(super()._brpop_read(**options))  # type: ignore[misc]
        except ValueError as exc:
            # Only kombu's JSON decoding of the popped item raises ValueError here (connection
            # errors are not ValueErrors); the item is already off the list and not unacked.
            log_rejected(None, f"the queue item is not JSON ({type(exc).__name__})")
            return True

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        try:
            return super()._get(queue)
        except ValueError as exc:
            log_rejected(None, f"the queue item is not JSON ({type(exc).__name__})")
            raise Empty() from None


class GuardedTransport(kombu_redis.Transport):
    Channel = GuardedChannel

    @cached_property
    def _fatal_errors(self) -> tuple[type[BaseException], ...]:
        # Connection trouble is Celery's to handle (reconnect, restore); never swallow it.
        return tuple(self.connection_errors) + tuple(self.channel_errors)

    def _deliver(self, message: Any, queue: str | None) -> None:
        problem = _shape_problem(message)
        if problem is not None:
            log_rejected(_delivery_tag(message), problem, message)
            return
        try:
            super()._deliver(message, queue)
        except self._fatal_errors:
            raise
        except Exception as exc:
            tag = _delivery_tag(message)
            self._forget(tag)
            log_rejected(tag, f"handling it raised {type(exc).__name__}: {exc}", message)

    def _forget(self, tag: object) -> None:
        """Ack a message that may already be in the unacked hash, and drop its request."""
        for request in list(worker_state.reserved_requests):
            if _tag_of(request) == tag:
                worker_state.task_ready(request)
        for channel in self.channels or ():
            with contextlib.suppress(Exception):
                channel.qos.ack(str(tag))


def _tag_of(request: Any) -> object:
    message = getattr(request, "message", None)
    return getattr(message, "delivery_tag", None)


def _shape_problem(raw: object) -> str | None:
    """Why `raw` cannot be a kombu message, or None; kombu would raise on any of these."""
    if not isinstance(raw, dict):
        return f"the queue item is JSON {type(raw).__name__}, not a message object"
    properties = raw.get("properties")
    if not isinstance(properties, dict):
        return "the message has no properties object"
    if not isinstance(properties.get("delivery_info"), dict):
        return "the message has no delivery_info object"
    if not isinstance(properties.get("delivery_tag"), str | int):
        return "the message has no delivery tag"
    if not isinstance(raw.get("headers"), dict | None):
        return "the message headers are not an object"
    if not isinstance(raw.get("body"), str | None):
        return "the message body is not a string"
    if properties.get("body_encoding") not in (None, "base64"):
        return "the message body encoding is unknown"
    return None


def _valid_time_limit(value: object) -> bool:
    if value is None:
        return True
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


class GuardedRequest(Request):
    """Celery's request, refusing header values it would only trip over after reserving."""

    def __init__(self, message: Any, *args: Any, **kwargs: Any) -> None:
        try:
            super().__init__(message, *args, **kwargs)
        except InvalidTaskError:
            raise
        except Exception as exc:
            raise InvalidTaskError(
                f"malformed task message ({type(exc).__name__}: {exc})"
            ) from None
        limits = self.request_dict.get("timelimit")
        if limits is not None and not (
            isinstance(limits, list | tuple)
            and len(limits) == 2
            and all(_valid_time_limit(v) for v in limits)
        ):
            raise InvalidTaskError(f"invalid timelimit header {_preview(limits)}")
        retries = self.request_dict.get("retries", 0)
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise InvalidTaskError(f"invalid retries header {_preview(retries)}")


class GuardedTask(Task):
    """Base of every agentqueue task: its messages are built by `GuardedRequest`."""

    Request = f"{__name__}:GuardedRequest"


def guarded(connection: Any) -> Any:
    """`connection` (not yet connected) on `GuardedTransport` when it is on kombu's Redis one."""
    if connection.get_transport_cls() is kombu_redis.Transport:
        # By name, not the class: `celery inspect stats` (and Flower) report it as JSON.
        connection.transport_cls = f"{__name__}:GuardedTransport"
    return connection


class GuardedConsumer(Consumer):
    def on_decode_error(self, message: Any, exc: Exception) -> None:
        log_rejected(message.delivery_tag, f"the body cannot be decoded ({exc})")
        super().on_decode_error(message, exc)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        log_rejected(message.delivery_tag, "not a Celery task message", body)
        super().on_unknown_message(body, message)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        log_rejected(message.delivery_tag, f"unknown task ({exc})")
        super().on_unknown_task(body, message, exc)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        log_rejected(message.delivery_tag, f"invalid task message ({exc})")
        super().on_invalid_task(body, message, exc)
