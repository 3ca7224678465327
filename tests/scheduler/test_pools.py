"""Worker pools: defaults, the AGENTQUEUE_POOLS override, and which pools are critical."""

from __future__ import annotations

import json

import pytest

from agentqueue.constants import QUEUES
from agentqueue.scheduler.pools import (
    DEFAULT_POOLS,
    InvalidPools,
    PoolSpec,
    UnknownPool,
    get_pool,
    load_pools,
    parse_pools,
    pool_for_queues,
)
from agentqueue.settings import load_settings


def test_defaults_split_interactive_from_batch() -> None:
    # Given no AGENTQUEUE_POOLS, Then interactive serves critical/high/normal and batch low
    pools = load_pools(load_settings())
    assert pools == DEFAULT_POOLS
    interactive, batch = get_pool(pools, "interactive"), get_pool(pools, "batch")
    assert interactive.queues == ("agentqueue.critical", "agentqueue.high", "agentqueue.normal")
    assert (interactive.min_concurrency, interactive.max_concurrency) == (4, 64)
    assert batch.queues == ("agentqueue.low",)
    assert (batch.min_concurrency, batch.max_concurrency) == (1, 32)
    assert interactive.is_critical and not batch.is_critical
    assert batch.autoscale == "32,1"
    # Every queue has a consumer
    assert set(QUEUES) == {queue for pool in pools for queue in pool.queues}


def test_override_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given AGENTQUEUE_POOLS with short and full queue names
    value = {
        "urgent": {"queues": ["critical", "agentqueue.high"], "min": 2, "max": 8},
        "bulk": {"queues": ["normal", "low", "low"], "min": 0, "max": 100},
    }
    monkeypatch.setenv("AGENTQUEUE_POOLS", json.dumps(value))
    # When loaded through settings
    pools = load_pools(load_settings())
    # Then the defaults are replaced, names normalised and duplicates dropped
    assert pools == (
        PoolSpec("urgent", ("agentqueue.critical", "agentqueue.high"), 2, 8),
        PoolSpec("bulk", ("agentqueue.normal", "agentqueue.low"), 0, 100),
    )
    assert pools[0].is_critical
    assert not pools[1].is_critical  # normal and low only: shrinks under budget pressure


def test_a_pool_with_high_is_critical() -> None:
    assert PoolSpec("x", ("agentqueue.high",), 1, 2).is_critical
    assert not PoolSpec("x", ("agentqueue.normal",), 1, 2).is_critical


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not json", "not JSON"),
        ("[]", "non-empty object"),
        ("{}", "non-empty object"),
        (
            '{"all": {"queues": ["critical", "high", "normal"], "min": 1, "max": 2}}',
            "no pool consumes agentqueue.low",
        ),
        (
            '{"all": {"queues": ["critical", "high", "normal", "lowest"], "min": 1, "max": 2}}',
            "unknown queue 'lowest'",
        ),
        (
            '{"all": {"queues": ["critical", "high", "normal", "low"], "min": 3, "max": 2}}',
            "min 3 above max 2",
        ),
        (
            '{"all": {"queues": ["critical", "high", "normal", "low"], "min": 1}}',
            "AGENTQUEUE_POOLS.all.max is invalid: it is required",
        ),
        (
            '{"all": {"queues": ["critical", "high", "normal", "low"], "min": true, "max": 2}}',
            "AGENTQUEUE_POOLS.all.min is invalid: Input should be a valid integer (got True)",
        ),
        (
            '{"all": {"queues": [], "min": 1, "max": 2}}',
            "AGENTQUEUE_POOLS.all.queues is invalid: needs at least 1",
        ),
        (
            '{"all": {"queues": ["low"], "min": 1, "max": 2, "prefetch": 3}}',
            "AGENTQUEUE_POOLS.all.prefetch is invalid: unknown key",
        ),
        ('{"All Pools": {"queues": ["low"], "min": 1, "max": 2}}', "pool name"),
    ],
)
def test_bad_pool_definitions_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(InvalidPools) as raised:
        parse_pools(text)
    assert raised.value.code == "invalid_pools"
    assert "AGENTQUEUE_POOLS" in raised.value.message
    assert fragment in raised.value.message


def test_unknown_pool_lists_the_defined_ones() -> None:
    with pytest.raises(UnknownPool) as raised:
        get_pool(DEFAULT_POOLS, "gpu")
    assert raised.value.code == "unknown_pool"
    assert "interactive, batch" in raised.value.message


def test_a_worker_finds_its_pool_from_the_queues_it_consumes() -> None:
    assert pool_for_queues(DEFAULT_POOLS, ["agentqueue.low"]) == DEFAULT_POOLS[1]
    assert pool_for_queues(DEFAULT_POOLS, reversed(DEFAULT_POOLS[0].queues)) == DEFAULT_POOLS[0]
    assert pool_for_queues(DEFAULT_POOLS, QUEUES) is None
