"""The pure scaling rule for one worker of a pool: given load and budget, the concurrency to run.

In order:

1. Budget: at or above `shrink_at_utilisation`, a non-critical pool goes straight to its
   min, with no cooldown (money outranks smoothness).
2. Range: a concurrency outside the pool's min/max is brought inside at once.
3. Recovery: when budget pressure has lifted and the caller remembers the concurrency it had
   before the budget shrink (`restore_to`), go back to it at once.
4. Cooldown: otherwise at most one change per `cooldown_s`.
5. Load: busy share >= `up_busy_share` grows by `up_step`, or by the queue depth when that
   is larger (capped at `max_backlog_step`), up to max; busy share <= `down_busy_share`
   with an empty queue shrinks by `down_step`, down to min.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from agentqueue.errors import AgentQueueError
from agentqueue.scheduler.pools import PoolSpec
from agentqueue.settings import Settings

DEFAULT_SHRINK_AT_UTILISATION = Decimal("0.95")


class InvalidScalingConfig(AgentQueueError):
    """Scaling thresholds that contradict each other."""

    code = "invalid_scaling_config"


@dataclass(frozen=True)
class ScalingConfig:
    """Thresholds are fractions (0.8 = 80%); steps are slots; cooldown is seconds."""

    up_busy_share: Decimal = Decimal("0.80")
    up_step: int = 2
    max_backlog_step: int = 16
    down_busy_share: Decimal = Decimal("0.30")
    down_step: int = 1
    cooldown_s: float = 300.0
    shrink_at_utilisation: Decimal = DEFAULT_SHRINK_AT_UTILISATION

    def __post_init__(self) -> None:
        if not self.down_busy_share < self.up_busy_share:
            raise InvalidScalingConfig(
                f"The scale-down busy share ({self.down_busy_share}) must be below the scale-up "
                f"share ({self.up_busy_share}); fix AGENTQUEUE_AUTOSCALE_DOWN_BUSY_SHARE or "
                "AGENTQUEUE_AUTOSCALE_UP_BUSY_SHARE."
            )
        if min(self.up_step, self.down_step, self.max_backlog_step) < 1 or self.cooldown_s < 0:
            raise InvalidScalingConfig("Scaling steps must be at least 1 and the cooldown >= 0.")

    @classmethod
    def from_settings(cls, settings: Settings) -> ScalingConfig:
        """Shrink threshold defaults to the ladder's "only high/critical run" level."""
        shrink_at = settings.autoscale_shrink_at_utilisation
        if shrink_at is None:
            shrink_at = getattr(settings, "budget_high_priority_only_at", None)
        return cls(
            up_busy_share=_decimal(settings.autoscale_up_busy_share),
            up_step=settings.autoscale_up_step,
            max_backlog_step=settings.autoscale_max_backlog_step,
            down_busy_share=_decimal(settings.autoscale_down_busy_share),
            down_step=settings.autoscale_down_step,
            cooldown_s=settings.autoscale_cooldown_s,
            shrink_at_utilisation=(
                DEFAULT_SHRINK_AT_UTILISATION if shrink_at is None else _decimal(shrink_at)
            ),
        )


def budget_holds_at_min(pool: PoolSpec, utilisation: Decimal, config: ScalingConfig) -> bool:
    """True while budget pressure pins this pool to its min."""
    return not pool.is_critical and utilisation >= config.shrink_at_utilisation


def scale_decision(
    current: int,
    busy: int,
    queue_depth: int,
    pool: PoolSpec,
    utilisation: Decimal,
    last_change_at: float | None,
    now: float,
    config: ScalingConfig,
    restore_to: int | None = None,
) -> int:
    """The target concurrency for a worker now running `current` slots, `busy` of them working.

    `queue_depth` counts messages waiting in the pool's queues; `utilisation` is the highest
    budget utilisation (1 = 100%); `last_change_at` and `now` are monotonic seconds.
    """
    lowest, highest = pool.min_concurrency, pool.max_concurrency
    if budget_holds_at_min(pool, utilisation, config):
        return lowest
    bounded = min(max(current, lowest), highest)
    if bounded != current:
        return bounded
    if restore_to is not None and restore_to > current:
        return min(restore_to, highest)
    if last_change_at is not None and now - last_change_at < config.cooldown_s:
        return current
    share = _busy_share(current, busy, queue_depth)
    if share >= config.up_busy_share:
        step = max(config.up_step, min(queue_depth, config.max_backlog_step))
        return min(current + step, highest)
    if share <= config.down_busy_share and queue_depth == 0:
        return max(current - config.down_step, lowest)
    return current


def _busy_share(current: int, busy: int, queue_depth: int) -> Decimal:
    if current > 0:
        return Decimal(busy) / Decimal(current)
    # No slots at all: any waiting or running work means fully busy.
    return Decimal(1) if busy > 0 or queue_depth > 0 else Decimal(0)


def _decimal(value: float | Decimal) -> Decimal:
    # Through str so 0.8 stays 0.8, not its binary approximation.
    return value if isinstance(value, Decimal) else Decimal(str(value))
