"""`AGENTQUEUE_POOLS`: worker pools, which queues each consumes and its concurrency range.

Defaults: `interactive` consumes critical, high and normal (4-64 slots per worker); `batch`
consumes low (1-32). The variable replaces them all with JSON such as
`{"interactive": {"queues": ["critical", "high"], "min": 4, "max": 64}, ...}`; queues may be
written in full (`agentqueue.low`) or by priority (`low`), and every queue must be consumed.
Unset or blank keeps the defaults.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_settings import NoDecode

from agentqueue.constants import QUEUE_PREFIX, QUEUES
from agentqueue.errors import InvalidPools
from agentqueue.strict import StrictModel, describe_all

POOLS_VARIABLE = "AGENTQUEUE_POOLS"
CRITICAL_QUEUES = frozenset({f"{QUEUE_PREFIX}critical", f"{QUEUE_PREFIX}high"})
_POOL_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_EXAMPLE = '{"batch": {"queues": ["low"], "min": 1, "max": 32}, ...}'


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


def _pool_name(name: str) -> str:
    if not _POOL_NAME.match(name):
        raise ValueError("a pool name is lower-case letters, digits, - or _ (up to 32)")
    return name


def _full_queue_name(queue: str) -> str:
    full = queue if queue.startswith(QUEUE_PREFIX) else f"{QUEUE_PREFIX}{queue}"
    if full not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; known: {', '.join(QUEUES)}")
    return full


class PoolDefinition(StrictModel):
    """One pool as the variable writes it: `{"queues": ["low"], "min": 1, "max": 32}`."""

    queues: tuple[Annotated[str, AfterValidator(_full_queue_name)], ...] = Field(min_length=1)
    min: int = Field(strict=True, ge=0)
    max: int = Field(strict=True, ge=1)

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Self:
        if self.min > self.max:
            raise ValueError(f"min {self.min} above max {self.max}")
        return self


_DEFINITIONS: TypeAdapter[dict[str, PoolDefinition]] = TypeAdapter(
    dict[Annotated[str, AfterValidator(_pool_name)], PoolDefinition]
)


def _pools(value: object) -> object:
    """The one parser of the variable: JSON text (or its object, or pool specs) to pool specs,
    every queue consumed."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_POOLS
    if isinstance(value, tuple | list) and all(isinstance(pool, PoolSpec) for pool in value):
        pools = tuple(value)
    else:
        pools = _from_json(value)
    unconsumed = [queue for queue in QUEUES if not any(queue in pool.queues for pool in pools)]
    if unconsumed:
        raise ValueError(f"no pool consumes {', '.join(unconsumed)}, so its jobs would never run")
    return pools


def _from_json(value: object) -> tuple[PoolSpec, ...]:
    raw = value
    if isinstance(value, str):
        try:
            raw = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"it is not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError(f"it must be a non-empty object like {_EXAMPLE}")
    return tuple(
        PoolSpec(name, tuple(dict.fromkeys(body.queues)), body.min, body.max)
        for name, body in _DEFINITIONS.validate_python(raw).items()
    )


Pools = Annotated[tuple[PoolSpec, ...], NoDecode, BeforeValidator(_pools), Field(min_length=1)]
"""The settings type: the variable's JSON (or pool specs); blank or None means the defaults."""

_POOLS: TypeAdapter[tuple[PoolSpec, ...]] = TypeAdapter(Pools)


def parse_pools(text: str) -> tuple[PoolSpec, ...]:
    """Parse the variable's JSON; raises `InvalidPools` naming the path of the bad value
    (`AGENTQUEUE_POOLS.batch.max`)."""
    try:
        return _POOLS.validate_python(text)
    except ValidationError as exc:
        raise InvalidPools(describe_all(POOLS_VARIABLE, exc)) from None
