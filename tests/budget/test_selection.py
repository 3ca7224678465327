"""`model="auto"`: cheapest by default, balanced (weighted) on request, no-qualify and fallback."""

from __future__ import annotations

from decimal import Decimal
from functools import partial

import pytest

from agentqueue.budget.catalog import Catalog, CatalogModel
from agentqueue.budget.errors import NoModelMeetsRequirements
from agentqueue.budget.price_overrides import PriceOverrides
from agentqueue.budget.pricing import PriceBook
from agentqueue.budget.selection import (
    Candidate,
    SelectionWeights,
    candidates_for,
    select_model,
)
from agentqueue.jobs import Requirements

# Three made-up models with round prices (USD per MTok, same for input and output):
#   cheap: $1, quality 0.5, 2000 ms; middle: $4, quality 0.8, 1000 ms; premium: $10, 0.95, 500 ms
PRICES = PriceOverrides.model_validate(
    {
        "models": {
            "cheap": {"input_per_mtok": 1, "output_per_mtok": 1},
            "middle": {"input_per_mtok": 4, "output_per_mtok": 4},
            "premium": {"input_per_mtok": 10, "output_per_mtok": 10},
        }
    }
)
CATALOG = Catalog(
    [
        CatalogModel(
            id="cheap",
            provider="x",
            quality=0.5,
            latency_ms=2000,
            context_window=100_000,
            max_output_tokens=4000,
        ),
        CatalogModel(
            id="middle",
            provider="x",
            quality=0.8,
            latency_ms=1000,
            context_window=100_000,
            max_output_tokens=4000,
        ),
        CatalogModel(
            id="premium",
            provider="x",
            quality=0.95,
            latency_ms=500,
            context_window=8_000,
            max_output_tokens=4000,
        ),
        CatalogModel(
            id="unpriced",
            provider="x",
            quality=1.0,
            latency_ms=1,
            context_window=100_000,
            max_output_tokens=4000,
        ),
    ]
)


def candidates(input_tokens: int = 1000, max_tokens: int = 1000) -> list[Candidate]:
    return candidates_for(
        CATALOG,
        PriceBook(PRICES),
        input_tokens=input_tokens,
        requested_max_tokens=max_tokens,
        default_max_tokens=1024,
    )


def test_unpriced_and_too_small_models_are_not_candidates() -> None:
    """Given a model without a price and one whose context cannot hold the input, then neither
    is a candidate (fail closed on price; never overflow the context)."""
    assert [c.entry.id for c in candidates()] == ["cheap", "middle", "premium"]
    assert [c.entry.id for c in candidates(input_tokens=7_500)] == ["cheap", "middle"]


def test_worst_case_cost_is_input_plus_max_output() -> None:
    by_id = {c.entry.id: c for c in candidates(1000, 1000)}
    assert by_id["cheap"].worst_case_usd == Decimal("0.002")
    assert by_id["premium"].worst_case_usd == Decimal("0.02")


def test_default_weights_balance_cost_quality_and_speed() -> None:
    """Given default weights 0.4/0.4/0.2, then middle wins: cheap lacks quality and speed,
    premium costs too much. Scores: cheap 0.40, middle 0.67, premium 0.60."""
    choice = select_model(candidates(), Requirements(), weights=SelectionWeights(), mode="balanced")
    assert choice.model == "middle"
    assert "middle" in choice.reason and "of 3 qualifying" in choice.reason
    assert not choice.fell_back


def test_weights_are_configurable() -> None:
    """Given all weight on cost, then cheap wins; all on quality, then premium wins."""
    only_cost = SelectionWeights(cost=1, quality=0, speed=0)
    only_quality = SelectionWeights(cost=0, quality=1, speed=0)
    pick = partial(select_model, candidates(), Requirements(), mode="balanced")
    assert pick(weights=only_cost).model == "cheap"
    assert pick(weights=only_quality).model == "premium"


def test_requirements_filter_before_scoring() -> None:
    """Given min_quality 0.7 and max_latency 1500 ms, then cheap is out and the best of the
    rest wins; with max_cost $0.01 premium is out as well."""
    wanted = Requirements(min_quality=0.7, max_latency_ms=1500)
    quality_first = SelectionWeights(0, 1, 0)
    choice = select_model(candidates(), wanted, weights=quality_first, mode="balanced")
    assert choice.model == "premium"
    capped = Requirements(min_quality=0.7, max_cost_usd=Decimal("0.01"))
    capped_choice = select_model(candidates(), capped, weights=quality_first, mode="balanced")
    assert capped_choice.model == "middle"


def test_cheapest_mode_takes_the_cheapest_qualifying_model() -> None:
    """Given budget pressure (cheapest mode) and min_quality 0.7, then middle, not premium."""
    choice = select_model(
        candidates(),
        Requirements(min_quality=0.7),
        weights=SelectionWeights(),
        mode="cheapest",
        pressure=True,
    )
    assert choice.model == "middle"
    assert choice.reason.startswith("auto (cheapest, budget pressure): middle")


def test_cheapest_is_the_default_and_breaks_ties_by_quality_then_speed() -> None:
    """Given no mode, then the cheapest model that qualifies wins, and its reason names the
    rule; among equally priced models the better one wins, then the faster one."""
    choice = select_model(candidates(), Requirements(), weights=SelectionWeights())
    assert choice.model == "cheap"
    assert choice.reason.startswith("auto (cheapest): cheap")
    same_price = PriceOverrides.model_validate(
        {"models": {m: {"input_per_mtok": 1, "output_per_mtok": 1} for m in ("a", "b", "c")}}
    )
    twins = Catalog(
        [
            CatalogModel(
                id=name,
                provider="x",
                quality=quality,
                latency_ms=latency,
                context_window=100_000,
                max_output_tokens=4000,
            )
            for name, quality, latency in (("a", 0.6, 100), ("b", 0.7, 900), ("c", 0.7, 300))
        ]
    )
    tied = candidates_for(
        twins,
        PriceBook(same_price),
        input_tokens=10,
        requested_max_tokens=10,
        default_max_tokens=10,
    )
    assert select_model(tied, Requirements(), weights=SelectionWeights()).model == "c"


def test_no_model_qualifies_without_fallback() -> None:
    """Given min_quality 0.99, when no model reaches it and fallback is not allowed, then
    NoModelMeetsRequirements with its stable code."""
    with pytest.raises(NoModelMeetsRequirements) as caught:
        select_model(candidates(), Requirements(min_quality=0.99), weights=SelectionWeights())
    assert caught.value.code == "no_model_meets_requirements"
    assert "min_quality 0.99" in caught.value.message


def test_fallback_picks_the_best_candidate_and_says_what_it_misses() -> None:
    """Given the same impossible requirement but allow_fallback, then a model runs anyway and
    the reason records the fallback and the unmet requirement."""
    choice = select_model(
        candidates(),
        Requirements(min_quality=0.99, allow_fallback=True),
        weights=SelectionWeights(),
        mode="balanced",
    )
    assert choice.fell_back
    assert choice.model == "middle"
    assert "fallback" in choice.reason and "misses min_quality 0.99" in choice.reason


def test_fallback_cannot_invent_a_model_when_nothing_fits() -> None:
    """Given an input no model can hold, then even fallback refuses."""
    with pytest.raises(NoModelMeetsRequirements, match="fits the input"):
        select_model(
            candidates(input_tokens=500_000),
            Requirements(allow_fallback=True),
            weights=SelectionWeights(),
        )


def test_weights_must_not_all_be_zero() -> None:
    with pytest.raises(ValueError):
        SelectionWeights(0, 0, 0)
