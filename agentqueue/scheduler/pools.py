"""Worker pools: which queues each pool consumes and how far its concurrency may scale.

The pools come from `AGENTQUEUE_POOLS` (format and defaults: `agentqueue.setting_types.pools`),
parsed and validated when the settings are read.
"""

from __future__ import annotations

from collections.abc import Iterable

from agentqueue.errors import AgentQueueError
from agentqueue.errors import InvalidPools as InvalidPools
from agentqueue.setting_types.pools import DEFAULT_POOLS as DEFAULT_POOLS
from agentqueue.setting_types.pools import POOLS_VARIABLE, PoolSpec
from agentqueue.setting_types.pools import parse_pools as parse_pools
from agentqueue.settings import Settings


class UnknownPool(AgentQueueError):
    """A worker was asked to serve a pool that is not defined."""

    code = "unknown_pool"


def load_pools(settings: Settings) -> tuple[PoolSpec, ...]:
    """The configured pools (validated when the settings were read)."""
    return settings.pools


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
