"""Shared builders for the budget tests: settings, a gate on a real database, jobs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from agentqueue.budget.budget_limits import set_budget
from agentqueue.budget.gate import Admission, AdmissionGroup, BudgetGate, CacheHit
from agentqueue.jobs import AgentJob
from agentqueue.persistence.engine import get_sessionmaker
from agentqueue.persistence.transactions import in_transaction
from agentqueue.settings import Settings, load_settings
from agentqueue.usage import TokenUsage

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


def admit(
    gate: BudgetGate,
    jobs: Sequence[AgentJob],
    *,
    now: datetime | None = None,
    service_tier: str = "standard",
    defer_allowed: bool = True,
) -> list[Admission]:
    """One group through the gate's admission, as the worker's admit step sends it."""
    group = AdmissionGroup(jobs, now or datetime.now(UTC), service_tier, defer_allowed)
    return gate.admit_groups([group])[0]


def settle(gate: BudgetGate, usages: Mapping[str, TokenUsage]) -> dict[str, Decimal]:
    """Settle jobs (job id -> usage) in a transaction of their own; job id -> cost."""
    return in_transaction(gate.sessions, lambda session: gate.settle_in(session, usages))


def record_hits(gate: BudgetGate, hits: Sequence[CacheHit]) -> None:
    """Record cache hits in a transaction of their own."""
    in_transaction(gate.sessions, lambda session: gate.record_cache_hits_in(session, hits))


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
