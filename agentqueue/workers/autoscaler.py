"""Celery autoscaler for our pools: queue depth and budget utilisation drive `scale_decision`.

Enabled with `worker_autoscaler = "agentqueue.workers.autoscaler:AgentQueueAutoscaler"` and
`--autoscale MAX,MIN` (Celery only starts an autoscaler when `autoscale` is given). With the
Redis transport the worker's event loop calls `maybe_scale` every `keepalive` seconds
(`AGENTQUEUE_AUTOSCALE_CHECK_INTERVAL_S`) and on every task message; evaluations less than
a second apart are skipped, so a burst of messages costs one Redis round trip. The pool
must support `grow`/`shrink`: prefork does; for threads use
`agentqueue.workers.thread_pool:ResizableThreadPool`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from time import monotonic
from typing import Any

import redis
from celery.worker import state
from celery.worker.autoscale import Autoscaler
from redis.backoff import NoBackoff
from redis.retry import Retry

from agentqueue.constants import BUDGET_UTILISATION_KEY, QUEUES
from agentqueue.scheduler.pools import PoolSpec, load_pools, pool_for_queues
from agentqueue.scheduler.scaling import ScalingConfig, budget_holds_at_min, scale_decision
from agentqueue.settings import Settings, get_settings

log = logging.getLogger(__name__)

UtilisationSource = Callable[[], Decimal]
QueueDepthSource = Callable[[tuple[str, ...]], int]


def redis_utilisation(client: redis.Redis) -> UtilisationSource:
    """Read the budget utilisation beat publishes; a missing key means no pressure known."""

    def read() -> Decimal:
        raw = client.get(BUDGET_UTILISATION_KEY)
        if raw is None:
            return Decimal(0)
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        try:
            return Decimal(text)
        except InvalidOperation as exc:
            raise ValueError(f"{BUDGET_UTILISATION_KEY} holds {text!r}, not a number") from exc

    return read


def redis_queue_depth(client: redis.Redis) -> QueueDepthSource:
    """Messages waiting in the given queues: kombu keeps each Redis queue as a list of its name.

    Our messages carry no Redis priority, so kombu's priority sub-lists stay empty.
    """

    def read(queues: tuple[str, ...]) -> int:
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.llen(queue)
            return sum(int(length) for length in pipe.execute())

    return read


class AgentQueueAutoscaler(Autoscaler):
    """Resizes this worker's pool to what `scale_decision` asks, within `--autoscale MAX,MIN`."""

    def __init__(
        self,
        pool: Any,
        max_concurrency: int,
        min_concurrency: int = 0,
        worker: Any = None,
        keepalive: float | None = None,
        mutex: Any = None,
        *,
        settings: Settings | None = None,
        pool_spec: PoolSpec | None = None,
        config: ScalingConfig | None = None,
        redis_client: redis.Redis | None = None,
        utilisation: UtilisationSource | None = None,
        queue_depth: QueueDepthSource | None = None,
        clock: Callable[[], float] = monotonic,
    ) -> None:
        settings = settings or get_settings()
        super().__init__(
            pool,
            max_concurrency,
            min_concurrency,
            worker=worker,
            keepalive=keepalive or settings.autoscale_check_interval_s,
            mutex=mutex,
        )
        self.config = config or ScalingConfig.from_settings(settings)
        self.pool_spec = pool_spec or _worker_pool_spec(
            worker, settings, max_concurrency, min_concurrency
        )
        if utilisation is None or queue_depth is None:
            client = redis_client or _event_loop_safe_client(settings.redis_url)
            utilisation = utilisation or redis_utilisation(client)
            queue_depth = queue_depth or redis_queue_depth(client)
        self._utilisation = utilisation
        self._queue_depth = queue_depth
        self._clock = clock
        # Per-message calls come in bursts; the timer calls every `keepalive` (with jitter).
        self.min_interval_s = min(1.0, self.keepalive / 2)
        self._last_change_at: float | None = None
        self._last_evaluated_at: float | None = None
        self._restore_to: int | None = None
        self._last_utilisation = Decimal(0)
        self._last_queue_depth = 0
        self._last_target: int | None = None

    @property
    def busy(self) -> int:
        """Slots working now: the pool's own count when it keeps one, else Celery's."""
        pool_busy = getattr(self.pool, "busy", None)
        return int(pool_busy) if pool_busy is not None else len(state.active_requests)

    def _maybe_scale(self, req: Any = None) -> bool:
        now = self._clock()
        if (
            self._last_evaluated_at is not None
            and now - self._last_evaluated_at < self.min_interval_s
        ):
            return False
        self._last_evaluated_at = now
        try:
            depth = self._queue_depth(self.pool_spec.queues)
        except (redis.RedisError, OSError) as exc:
            log.warning("autoscaler: cannot read queue depth, not scaling this time: %s", exc)
            return False
        self._last_queue_depth = depth
        self._last_utilisation = self._read_utilisation()
        spec = self._bounded_spec()
        current = int(self.processes)
        held = budget_holds_at_min(spec, self._last_utilisation, self.config)
        if held and self._restore_to is None and current > spec.min_concurrency:
            self._restore_to = current
        target = scale_decision(
            current,
            self.busy,
            depth,
            spec,
            self._last_utilisation,
            self._last_change_at,
            now,
            self.config,
            restore_to=None if held else self._restore_to,
        )
        if not held:
            self._restore_to = None
        self._last_target = target
        if target == current:
            return False
        self._resize(current, target)
        self._last_change_at = now
        return True

    def info(self) -> dict[str, Any]:
        """What `celery inspect stats` shows under `autoscaler`."""
        info: dict[str, Any] = dict(super().info())
        info.update(
            {
                "pool": self.pool_spec.name,
                "queues": list(self.pool_spec.queues),
                "busy": self.busy,
                "queue_depth": self._last_queue_depth,
                "utilisation": str(self._last_utilisation),
                "target": self._last_target,
                "held_by_budget": budget_holds_at_min(
                    self._bounded_spec(), self._last_utilisation, self.config
                ),
            }
        )
        return info

    def _bounded_spec(self) -> PoolSpec:
        # `celery control autoscale MAX MIN` moves these at run time; they win over settings.
        return dataclasses.replace(
            self.pool_spec,
            min_concurrency=int(self.min_concurrency),
            max_concurrency=int(self.max_concurrency),
        )

    def _read_utilisation(self) -> Decimal:
        try:
            return self._utilisation()
        except Exception as exc:  # the source is pluggable (Redis key, ledger query, ...)
            # Keep the last reading: a blip must neither release nor impose a shrink.
            log.warning("autoscaler: cannot read budget utilisation, keeping last: %s", exc)
            return self._last_utilisation

    def _resize(self, current: int, target: int) -> None:
        if target > current:
            log.info("autoscaler: %s grows %d -> %d", self.pool_spec.name, current, target)
            self.pool.grow(target - current)  # type: ignore[attr-defined]
            return
        log.info("autoscaler: %s shrinks %d -> %d", self.pool_spec.name, current, target)
        try:
            self.pool.shrink(current - target)  # type: ignore[attr-defined]
        except ValueError:
            log.debug("autoscaler: pool refused to shrink (all slots busy)")


def _event_loop_safe_client(url: str) -> redis.Redis:
    # Read on the worker's event loop: a Redis blip must cost a second, not minutes.
    return redis.Redis.from_url(
        url,
        socket_timeout=1,
        socket_connect_timeout=1,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )


def _worker_pool_spec(
    worker: Any, settings: Settings, max_concurrency: int, min_concurrency: int
) -> PoolSpec:
    """The pool whose queues this worker consumes; an ad hoc one when none matches exactly."""
    consumed = _consumed_queues(worker)
    found = pool_for_queues(load_pools(settings), consumed)
    if found is not None:
        return found
    return PoolSpec("worker", consumed, min_concurrency, max_concurrency)


def _consumed_queues(worker: Any) -> tuple[str, ...]:
    try:
        return tuple(worker.app.amqp.queues.consume_from)
    except AttributeError:
        return QUEUES
