"""The cost ledger: prices, model catalog and selection, token estimates, the budget ladder."""

from __future__ import annotations

from agentqueue.budget.errors import (
    BudgetExceeded,
    NoModelMeetsRequirements,
    UnknownModelPrice,
)
from agentqueue.budget.gate import Admission, BudgetGate, CacheHit
from agentqueue.budget.state import BudgetState

__all__ = [
    "Admission",
    "BudgetExceeded",
    "BudgetGate",
    "BudgetState",
    "CacheHit",
    "NoModelMeetsRequirements",
    "UnknownModelPrice",
]
