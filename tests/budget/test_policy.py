"""The degradation ladder: utilisation of the tightest scope decides the action."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agentqueue.budget.policy import BudgetAction, BudgetLadder
from agentqueue.settings import load_settings


@pytest.mark.parametrize(
    ("utilisation", "action"),
    [
        ("0.10", BudgetAction.NONE),
        ("0.4999", BudgetAction.NONE),
        ("0.50", BudgetAction.ALERT),
        ("0.80", BudgetAction.RIGHT_SIZE),
        ("0.8999", BudgetAction.RIGHT_SIZE),
        ("0.90", BudgetAction.DEFER),
        ("0.95", BudgetAction.HIGH_PRIORITY_ONLY),
        ("1.00", BudgetAction.REFUSE),
        ("1.50", BudgetAction.REFUSE),
    ],
)
def test_default_thresholds(utilisation: str, action: BudgetAction) -> None:
    assert BudgetLadder().action_for(Decimal(utilisation)) is action


def test_decisions_per_priority_up_the_ladder() -> None:
    """Given the default ladder: under 80% everything runs with the weighted choice; at 80%
    runs go cheapest; at 90% low waits; at 95% only high and critical run; at 100% refuse."""
    ladder = BudgetLadder()
    assert ladder.decide(Decimal("0.6"), "low").decision == "run"
    assert ladder.decide(Decimal("0.6"), "low").selection_mode == "weighted"
    assert ladder.decide(Decimal("0.85"), "low").selection_mode == "cheapest"
    assert ladder.decide(Decimal("0.85"), "low").action is BudgetAction.RIGHT_SIZE
    assert ladder.decide(Decimal("0.92"), "low").decision == "defer"
    assert ladder.decide(Decimal("0.92"), "normal").decision == "run"
    assert ladder.decide(Decimal("0.96"), "normal").decision == "defer"
    assert ladder.decide(Decimal("0.96"), "high").decision == "run"
    assert ladder.decide(Decimal("0.96"), "critical").decision == "run"
    assert ladder.decide(Decimal("1.0"), "critical").decision == "reject"


def test_a_job_that_cannot_wait_runs_instead_of_deferring() -> None:
    """Given a job whose deadline is near (not deferrable), then it runs at 96%."""
    decision = BudgetLadder().decide(Decimal("0.96"), "low", deferrable=False)
    assert decision.decision == "run"
    assert decision.action is BudgetAction.HIGH_PRIORITY_ONLY


def test_thresholds_and_deferred_priorities_come_from_settings() -> None:
    """Given AGENTQUEUE_BUDGET_* settings, then the ladder uses them."""
    settings = load_settings(
        budget_alert_at=0.3,
        budget_right_size_at=0.4,
        budget_defer_at=0.5,
        budget_high_priority_only_at=0.6,
        budget_refuse_at=0.7,
        budget_defer_priorities=("low", "normal"),
    )
    ladder = BudgetLadder.from_settings(settings)
    assert ladder.action_for(Decimal("0.35")) is BudgetAction.ALERT
    assert ladder.decide(Decimal("0.55"), "normal").decision == "defer"
    assert ladder.decide(Decimal("0.70"), "critical").decision == "reject"


def test_thresholds_out_of_order_are_rejected() -> None:
    with pytest.raises(ValueError, match="in order"):
        BudgetLadder(right_size_at=Decimal("0.95"), defer_at=Decimal("0.9"))
