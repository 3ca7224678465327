"""Worker pools: which queues each pool consumes and how far its concurrency may scale.

Defaults: `interactive` consumes critical, high and normal (4-64 slots per worker); `batch`
consumes low (1-32). `AGENTQUEUE_POOLS` replaces them all with JSON such as
`{"interactive": {"queues": ["critical", "high"], "min": 4, "max": 64}, ...}`; queues may be
written in full (`agentqueue.low`) or by priority (`low`), and every queue must be consumed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from agentqueue.constants import QUEUE_PREFIX, QUEUES
from agentqueue.errors import AgentQueueError
from agentqueue.settings import Settings

POOLS_VARIABLE = "AGENTQUEUE_POOLS"
CRITICAL_QUEUES = frozenset({f"{QUEUE_PREFIX}critical", f"{QUEUE_PREFIX}high"})
_POOL_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class InvalidPools(AgentQueueError):
    """The pool definitions cannot be used; the message says what to fix."""

    code = "invalid_pools"


class UnknownPool(AgentQueueError):
    """A worker was asked to serve a pool that is not defined."""

    code = "unknown_pool"


@dataclass(frozen=True)
class PoolSpec:
    """One pool: its queues and the concurrency range of each of its workers."""

    name: str
    queues: tuple[str, ...]
    min_concurrency: int
    max_concurrency: int

    @property
    def is_critical(self) -> bool:
        """A pool serving critical or high work is never shrunk for budget pressure."""
        return not CRITICAL_QUEUES.isdisjoint(self.queues)

    @property
    def autoscale(self) -> str:
        """The `--autoscale MAX,MIN` value Celery expects for this pool's workers."""
        return f"{self.max_concurrency},{self.min_concurrency}"


DEFAULT_POOLS: tuple[PoolSpec, ...] = (
    PoolSpec(
        "interactive", tuple(f"{QUEUE_PREFIX}{p}" for p in ("critical", "high", "normal")), 4, 64
    ),
    PoolSpec("batch", (f"{QUEUE_PREFIX}low",), 1, 32),
)


def load_pools(settings: Settings) -> tuple[PoolSpec, ...]:
    """The configured pools. Raises `InvalidPools` when `AGENTQUEUE_POOLS` is unusable."""
    if settings.pools is None or not settings.pools.strip():
        return DEFAULT_POOLS
    return parse_pools(settings.pools)


def parse_pools(text: str) -> tuple[PoolSpec, ...]:
    """Parse the `AGENTQUEUE_POOLS` JSON object; raises `InvalidPools` on any problem."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        _refuse(f"it is not JSON ({exc.msg} at character {exc.pos})")
    if not isinstance(raw, dict) or not raw:
        _refuse('it must be a non-empty object like {"batch": {"queues": ["low"], "max": 32, ...}}')
    pools = tuple(_pool(name, body) for name, body in raw.items())
    unconsumed = [queue for queue in QUEUES if not any(queue in pool.queues for pool in pools)]
    if unconsumed:
        _refuse(f"no pool consumes {', '.join(unconsumed)}, so its jobs would never run")
    return pools


def get_pool(pools: Iterable[PoolSpec], name: str) -> PoolSpec:
    """The pool called `name`; raises `UnknownPool` listing the defined names."""
    pools = tuple(pools)
    for pool in pools:
        if pool.name == name:
            return pool
    names = ", ".join(pool.name for pool in pools)
    raise UnknownPool(
        f"There is no worker pool {name!r}; choose one of: {names} (see {POOLS_VARIABLE})."
    )


def pool_for_queues(pools: Iterable[PoolSpec], queues: Iterable[str]) -> PoolSpec | None:
    """The pool that consumes exactly `queues`, if any (how a running worker finds its pool)."""
    wanted = frozenset(queues)
    return next((pool for pool in pools if frozenset(pool.queues) == wanted), None)


def _pool(name: object, body: object) -> PoolSpec:
    if not isinstance(name, str) or not _POOL_NAME.match(name):
        _refuse(f"pool name {name!r} must be lower-case letters, digits, - or _ (up to 32)")
    if not isinstance(body, Mapping):
        _refuse(f"pool {name!r} must be an object with queues, min and max")
    unknown = set(body) - {"queues", "min", "max"}
    if unknown:
        _refuse(f"pool {name!r} has unknown keys {sorted(unknown)}; use queues, min and max")
    queues = body.get("queues")
    if not isinstance(queues, list) or not queues:
        _refuse(f"pool {name!r} needs a non-empty list of queues")
    minimum = _count(name, "min", body.get("min"), lowest=0)
    maximum = _count(name, "max", body.get("max"), lowest=1)
    if minimum > maximum:
        _refuse(f"pool {name!r} has min {minimum} above max {maximum}")
    return PoolSpec(
        name, tuple(dict.fromkeys(_queue(name, queue) for queue in queues)), minimum, maximum
    )


def _queue(pool: str, queue: object) -> str:
    full = (
        queue
        if isinstance(queue, str) and queue.startswith(QUEUE_PREFIX)
        else f"{QUEUE_PREFIX}{queue}"
    )
    if full not in QUEUES:
        _refuse(f"pool {pool!r} names unknown queue {queue!r}; known: {', '.join(QUEUES)}")
    return full


def _count(pool: str, key: str, value: Any, *, lowest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        _refuse(f"pool {pool!r} needs {key} as a whole number of at least {lowest}")
    return value


def _refuse(problem: str) -> NoReturn:
    raise InvalidPools(f"{POOLS_VARIABLE} is invalid: {problem}.")
