"""Shared builders for the budget tests: settings, a gate on a real database, jobs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from agentqueue.budget.budget_limits import set_budget
from agentqueue.budget.gate import BudgetGate
from agentqueue.jobs import AgentJob
from agentqueue.persistence.engine import get_sessionmaker
from agentqueue.settings import Settings, load_settings

# A fixed moment in the middle of a day, week and month, so windows never roll during a test.
NOON = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)


def make_job(job_id: str, **fields: Any) -> AgentJob:
    """A small job; `fields` override the defaults."""
    values: dict[str, Any] = {
        "id": job_id,
        "agent_type": "summarise",
        "tenant": "acme",
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Summarise the quarterly report."}],
        "params": {"max_tokens": 200},
    }
    values.update(fields)
    return AgentJob.model_validate(values)


@pytest.fixture
def make_gate(database_url: str) -> Callable[..., BudgetGate]:
    """Build a gate on the test database; keyword arguments become settings."""

    def build(**settings: Any) -> BudgetGate:
        configured: Settings = load_settings(database_url=database_url, **settings)
        return BudgetGate(get_sessionmaker(database_url), configured)

    return build


@pytest.fixture
def limit(database_url: str) -> Callable[[str, str, str], None]:
    """Set a budget: limit("global", "daily", "1.00")."""

    def apply(scope: str, period: str, amount: str) -> None:
        set_budget(
            get_sessionmaker(database_url), scope, period, Decimal(amount), now=NOON, timezone="UTC"
        )

    return apply
