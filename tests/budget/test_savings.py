"""What pruning and right-sizing saved, priced like the ledger prices a call."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from agentqueue.budget.planning import JobPlanner, RunOption
from agentqueue.budget.pricing import PriceBook
from agentqueue.budget.savings import pruning_saving, right_sizing_saving
from agentqueue.budget.selection import SelectionWeights
from agentqueue.jobs import AgentJob
from tests.budget.test_selection import CATALOG, PRICES

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


def planner() -> JobPlanner:
    return JobPlanner(
        CATALOG,
        PriceBook(PRICES),
        SelectionWeights(cost=0.4, quality=0.4, speed=0.2),
        default_max_tokens=100,
        chars_per_token=3.0,
    )


def auto_job(**overrides: object) -> AgentJob:
    return AgentJob.model_validate(
        {
            "agent_type": "triage",
            "model": "auto",
            "requirements": {"min_quality": 0.5},
            "messages": [{"role": "user", "content": "classify this ticket"}],
            **overrides,
        }
    )


def test_pruning_saves_the_dropped_input_tokens_at_the_input_price() -> None:
    prices = PriceBook(PRICES)
    # "middle" costs $4 per million input tokens.
    assert pruning_saving(prices, "middle", "standard", 250_000, at=NOW) == Decimal("1.0000000000")
    assert pruning_saving(prices, "middle", "standard", 0, at=NOW) == 0
    assert pruning_saving(prices, "no-such-model", "standard", 1000, at=NOW) == 0


def test_right_sizing_saves_the_weighted_choice_price_less_the_cheaper_cost() -> None:
    plan = planner().plan(auto_job(), "standard", NOW)
    assert isinstance(plan.weighted, RunOption) and isinstance(plan.cheapest, RunOption)
    assert plan.weighted.model != plan.cheapest.model == "cheap"
    weighted_rate = {"middle": 4, "premium": 10}[plan.weighted.model]
    tokens_in, tokens_out = 1000, 500
    cheap_cost = Decimal(tokens_in + tokens_out) / 1_000_000  # $1 per MTok

    saved = right_sizing_saving(
        planner(),
        auto_job(),
        "standard",
        at=NOW,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cost=cheap_cost,
    )

    assert saved == Decimal(tokens_in + tokens_out) * (weighted_rate - 1) / 1_000_000


def test_an_explicit_model_was_never_right_sized() -> None:
    job = auto_job(model="middle", requirements=None)
    assert (
        right_sizing_saving(
            planner(), job, "standard", at=NOW, input_tokens=10, output_tokens=10, cost=Decimal(1)
        )
        == 0
    )
