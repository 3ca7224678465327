"""The scaling rule: load grows and shrinks pools; budget pressure pins non-critical ones to min."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agentqueue.scheduler.pools import DEFAULT_POOLS, PoolSpec
from agentqueue.scheduler.scaling import (
    InvalidScalingConfig,
    ScalingConfig,
    budget_holds_at_min,
    scale_decision,
)
from agentqueue.settings import load_settings

INTERACTIVE, BATCH = DEFAULT_POOLS
CONFIG = ScalingConfig()
CALM = Decimal("0.10")
NOW = 10_000.0
LONG_AGO = NOW - 3600


def decide(
    current: int,
    busy: int,
    depth: int = 0,
    *,
    pool: PoolSpec = BATCH,
    utilisation: Decimal = CALM,
    last_change_at: float | None = LONG_AGO,
    config: ScalingConfig = CONFIG,
    restore_to: int | None = None,
) -> int:
    return scale_decision(
        current, busy, depth, pool, utilisation, last_change_at, NOW, config, restore_to
    )


def test_busy_pool_grows_by_the_step() -> None:
    # Given 10 slots, 8 busy (80%), empty queue, Then +2
    assert decide(10, 8) == 12
    # And just below 80% nothing happens
    assert decide(10, 7) == 10


def test_backlog_grows_faster_but_capped_per_step() -> None:
    # Given a busy pool with 5 waiting messages, Then it grows by 5 (more than the step of 2)
    assert decide(10, 10, depth=5) == 15
    # Given 500 waiting, Then the jump is capped at max_backlog_step (16)
    assert decide(10, 10, depth=500) == 26


def test_growth_stops_at_the_pool_max() -> None:
    assert decide(31, 31, depth=100) == 32
    assert decide(32, 32, depth=100) == 32


def test_waiting_work_with_idle_slots_does_not_grow() -> None:
    # Idle slots will take the waiting messages; more slots would not help
    assert decide(10, 2, depth=50) == 10


def test_idle_pool_shrinks_by_one_down_to_min() -> None:
    assert decide(10, 3) == 9  # 30% busy
    assert decide(10, 0) == 9
    assert decide(1, 0) == 1  # batch min is 1
    assert decide(4, 0, pool=INTERACTIVE) == 4  # interactive min is 4


def test_idle_pool_with_a_backlog_does_not_shrink() -> None:
    assert decide(10, 3, depth=1) == 10


def test_cooldown_holds_after_a_change() -> None:
    # Given a change 299 s ago, Then no move either way
    assert decide(10, 10, depth=9, last_change_at=NOW - 299) == 10
    assert decide(10, 0, last_change_at=NOW - 299) == 10
    # After 300 s the rule applies again; with no change ever, at once
    assert decide(10, 10, last_change_at=NOW - 300) == 12
    assert decide(10, 10, last_change_at=None) == 12


def test_budget_pressure_sends_a_non_critical_pool_straight_to_min() -> None:
    # Given 95% utilisation, a busy batch pool with a backlog, changed a second ago
    held = decide(30, 30, depth=100, utilisation=Decimal("0.95"), last_change_at=NOW - 1)
    # Then it drops to its min at once, ignoring the cooldown
    assert held == BATCH.min_concurrency
    assert decide(30, 30, utilisation=Decimal("1.20")) == 1
    assert budget_holds_at_min(BATCH, Decimal("0.95"), CONFIG)
    assert not budget_holds_at_min(BATCH, Decimal("0.9499"), CONFIG)


def test_budget_pressure_leaves_critical_pools_to_the_load_rule() -> None:
    assert decide(10, 10, pool=INTERACTIVE, utilisation=Decimal("0.99")) == 12
    assert not budget_holds_at_min(INTERACTIVE, Decimal("0.99"), CONFIG)


def test_pool_grows_back_when_utilisation_falls() -> None:
    # Given a batch pool pinned at 1 that ran 24 slots before the shrink
    # When utilisation falls (a new budget window), Then it returns to 24 at once, idle or not
    assert decide(1, 0, restore_to=24, last_change_at=NOW - 1) == 24
    # But not while the pressure lasts
    assert decide(1, 0, utilisation=Decimal("0.96"), restore_to=24) == 1
    # And never above the pool max
    assert decide(1, 0, restore_to=500) == 32
    # Without a remembered level, recovery follows the load rule
    assert decide(1, 1, last_change_at=NOW - 301) == 3


def test_concurrency_outside_the_range_is_corrected_at_once() -> None:
    # e.g. after `celery control autoscale` narrowed the range
    assert decide(40, 0, last_change_at=NOW - 1) == 32
    assert decide(0, 0, pool=INTERACTIVE, last_change_at=NOW - 1) == 4


def test_a_pool_with_no_slots_starts_when_work_waits() -> None:
    empty_ok = PoolSpec("spare", ("agentqueue.low",), 0, 8)
    assert decide(0, 0, depth=3, pool=empty_ok) == 3
    assert decide(0, 0, depth=0, pool=empty_ok) == 0


def test_every_threshold_is_configurable() -> None:
    config = ScalingConfig(
        up_busy_share=Decimal("0.5"),
        up_step=4,
        max_backlog_step=6,
        down_busy_share=Decimal("0.1"),
        down_step=3,
        cooldown_s=10,
        shrink_at_utilisation=Decimal("0.8"),
    )
    assert decide(10, 5, config=config) == 14
    assert decide(10, 10, depth=50, config=config) == 16
    assert decide(10, 1, config=config) == 7
    assert decide(10, 2, config=config) == 10
    assert decide(10, 10, last_change_at=NOW - 11, config=config) == 14
    assert decide(10, 10, utilisation=Decimal("0.8"), config=config) == 1


def test_config_from_settings_and_its_checks() -> None:
    # Given settings overriding thresholds, Then the config carries them as exact decimals
    config = ScalingConfig.from_settings(
        load_settings(autoscale_up_busy_share=0.7, autoscale_cooldown_s=60, autoscale_up_step=3)
    )
    assert config.up_busy_share == Decimal("0.7")
    assert (config.cooldown_s, config.up_step, config.down_step) == (60, 3, 1)
    # The shrink threshold defaults to the budget ladder's "only high/critical run" level
    assert config.shrink_at_utilisation == Decimal("0.95")
    assert ScalingConfig.from_settings(
        load_settings(autoscale_shrink_at_utilisation=0.9)
    ).shrink_at_utilisation == Decimal("0.9")
    # Contradictory thresholds are refused with a code
    with pytest.raises(InvalidScalingConfig) as raised:
        ScalingConfig(up_busy_share=Decimal("0.3"), down_busy_share=Decimal("0.3"))
    assert raised.value.code == "invalid_scaling_config"
