"""The budget ladder: utilisation of the tightest scope decides how a job is admitted."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from agentqueue.budget.selection import SelectionMode
from agentqueue.settings import Settings

ALWAYS_RUN_AT_HIGH_PRIORITY_ONLY = frozenset({"critical", "high"})

# What happens to one job; a rejected job ends with status `rejected` (JobStatus.REJECTED).
# `wait` (for room other jobs' reservations hold) is the gate's alone: the ladder never says it.
Decision = Literal["run", "defer", "wait", "reject"]


class BudgetAction(StrEnum):
    """What budget pressure does, from mildest to hardest."""

    NONE = "none"
    ALERT = "alert"
    RIGHT_SIZE = "right_size"  # auto jobs take the cheapest qualifying model; prefer cache
    DEFER = "defer"  # deferrable priorities wait for off-peak
    HIGH_PRIORITY_ONLY = "high_priority_only"  # only high and critical run
    REFUSE = "refuse"  # hard stop: jobs are rejected with budget_exceeded


@dataclass(frozen=True, slots=True)
class LadderDecision:
    """How one job is admitted at the current utilisation."""

    decision: Decision
    action: BudgetAction
    selection_mode: SelectionMode


@dataclass(frozen=True, slots=True)
class BudgetLadder:
    """Thresholds (fractions of the limit) at which each action starts; must not decrease."""

    alert_at: Decimal = Decimal("0.50")
    right_size_at: Decimal = Decimal("0.80")
    defer_at: Decimal = Decimal("0.90")
    high_priority_only_at: Decimal = Decimal("0.95")
    refuse_at: Decimal = Decimal("1.00")
    defer_priorities: frozenset[str] = frozenset({"low"})

    def __post_init__(self) -> None:
        steps = [threshold for threshold, _ in self.steps()]
        if steps != sorted(steps) or steps[0] <= 0:
            raise ValueError(
                "budget thresholds must be positive and in order: "
                "alert <= right_size <= defer <= high_priority_only <= refuse"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> BudgetLadder:
        def fraction(value: float) -> Decimal:
            return Decimal(str(value))

        return cls(
            alert_at=fraction(settings.budget_alert_at),
            right_size_at=fraction(settings.budget_right_size_at),
            defer_at=fraction(settings.budget_defer_at),
            high_priority_only_at=fraction(settings.budget_high_priority_only_at),
            refuse_at=fraction(settings.budget_refuse_at),
            defer_priorities=frozenset(settings.budget_defer_priorities),
        )

    def steps(self) -> list[tuple[Decimal, BudgetAction]]:
        """(threshold, action) from the lowest threshold to the highest."""
        return [
            (self.alert_at, BudgetAction.ALERT),
            (self.right_size_at, BudgetAction.RIGHT_SIZE),
            (self.defer_at, BudgetAction.DEFER),
            (self.high_priority_only_at, BudgetAction.HIGH_PRIORITY_ONLY),
            (self.refuse_at, BudgetAction.REFUSE),
        ]

    def action_for(self, utilisation: Decimal) -> BudgetAction:
        """The hardest action whose threshold `utilisation` has reached."""
        action = BudgetAction.NONE
        for threshold, step in self.steps():
            if utilisation >= threshold:
                action = step
        return action

    def decide(
        self, utilisation: Decimal, priority: str, *, deferrable: bool = True
    ) -> LadderDecision:
        """Run, defer or reject a job of `priority`; a job that may not wait runs instead."""
        action = self.action_for(utilisation)
        cheapest: SelectionMode = "cheapest"
        if action is BudgetAction.REFUSE:
            return LadderDecision("reject", action, cheapest)
        if action is BudgetAction.HIGH_PRIORITY_ONLY:
            held = priority not in ALWAYS_RUN_AT_HIGH_PRIORITY_ONLY
            return LadderDecision("defer" if held and deferrable else "run", action, cheapest)
        if action is BudgetAction.DEFER:
            held = priority in self.defer_priorities
            return LadderDecision("defer" if held and deferrable else "run", action, cheapest)
        if action is BudgetAction.RIGHT_SIZE:
            return LadderDecision("run", action, cheapest)
        return LadderDecision("run", action, "weighted")
