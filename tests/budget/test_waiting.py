"""Waiting, not refusing, while only reservations hold the room; refusing at once when the
money is spent; bounded waits; waiters in priority order (real SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from agentqueue.budget.errors import BudgetExceeded
from agentqueue.budget.gate import AdmissionGroup, BudgetGate
from agentqueue.jobs import AgentJob, JobStatus
from agentqueue.persistence import jobs_repository
from agentqueue.persistence.engine import get_sessionmaker
from agentqueue.persistence.job_table import JobRecord
from agentqueue.usage import TokenUsage
from tests.budget.conftest import NOON, admit, make_job, settle
from tests.budget.test_gate import FILLER_PRICES, fill

GateFactory = Callable[..., BudgetGate]
Limit = Callable[[str, str, str], None]


@pytest.fixture
def gate(make_gate: GateFactory, limit: Limit, tmp_path: Path) -> BudgetGate:
    """A global daily budget of $0.06 with 2 cents spent and about 2 cents reserved by two
    running jobs ("holder-1", "holder-2"): $0.04 used, $0.02 free, $0.04 not yet spent."""
    prices = tmp_path / "prices.toml"
    prices.write_text(FILLER_PRICES)
    limit("global", "daily", "0.06")
    built = make_gate(prices_file=prices)
    fill(built, 2)
    holders = [cents_job("holder-1", 1), cents_job("holder-2", 1)]
    assert [a.decision for a in admit(built, holders, now=NOON)] == ["run", "run"]
    return built


def cents_job(job_id: str, cents: int, **fields: object) -> AgentJob:
    """A job whose worst case is `cents` cents (and a hair of input)."""
    return make_job(
        job_id,
        model="filler",
        messages=[{"role": "user", "content": "x"}],
        params={"max_tokens": cents},
        **fields,
    )


def test_a_job_kept_out_only_by_reservations_waits_and_runs_when_they_settle(
    gate: BudgetGate,
) -> None:
    """Given $0.02 free but $0.04 unspent, a 3-cent job is told to wait (not refused) for the
    global daily budget, soon; once the holders settle cheaply it is admitted."""
    [admission] = admit(gate, [cents_job("big", 3)], now=NOON)
    assert admission.decision == "wait" and admission.error is None
    assert admission.waiting_for == "daily:global"
    assert 0.1 < admission.retry_after_s <= 2.5
    assert admission.reservation.reserved_usd == 0

    settle(gate, {"holder-1": TokenUsage(0, 0), "holder-2": TokenUsage(0, 0)})
    group = AdmissionGroup([cents_job("big", 3)], NOON + timedelta(seconds=1))
    [again] = gate.admit_groups([group])[0]
    assert again.decision == "run"


def test_a_job_the_spent_money_leaves_no_room_for_is_refused_at_once(gate: BudgetGate) -> None:
    """Given $0.04 of $0.06 spent (the holders settled at a cent each), a 3-cent job is
    refused at once, with a message naming scope, window, spent and limit."""
    settle(gate, {"holder-1": TokenUsage(0, 1), "holder-2": TokenUsage(0, 1)})
    [admission] = admit(gate, [cents_job("big", 3)], now=NOON)
    assert admission.decision == "reject"
    error = admission.error
    assert isinstance(error, BudgetExceeded) and error.code == "budget_exceeded"
    assert error.spent_usd == Decimal("0.04")
    assert error.limit_usd == Decimal("0.06") and error.waited_s is None
    message = str(error)
    assert "the daily budget of global ($0.06 for 2026-03-11 UTC) is used up" in message
    assert "$0.04 of $0.06 is spent" in message


def test_a_wait_ends_in_a_refusal_after_the_wait_limit_or_before_the_deadline(
    gate: BudgetGate,
) -> None:
    """Given a job that has waited past AGENTQUEUE_BUDGET_MAX_WAIT_S, or whose deadline comes
    before it could ask again, it is refused with a message saying it waited."""
    waited = AdmissionGroup(
        [cents_job("patient", 3)], NOON, waiting_since={"patient": NOON - timedelta(seconds=181)}
    )
    [late] = gate.admit_groups([waited])[0]
    assert late.decision == "reject" and isinstance(late.error, BudgetExceeded)
    assert late.error.waited_s == 181
    assert "had no room for this job after waiting 181 s" in str(late.error)
    assert "reserved by running jobs" in str(late.error)

    hurried = cents_job("hurried", 3, deadline=NOON + timedelta(milliseconds=100))
    [due] = admit(gate, [hurried], now=NOON)
    assert due.decision == "reject" and isinstance(due.error, BudgetExceeded)

    [still] = admit(gate, [cents_job("fresh", 3)], now=NOON)
    assert still.decision == "wait"


def test_no_waiting_when_the_wait_limit_is_zero(
    make_gate: GateFactory, gate: BudgetGate, tmp_path: Path
) -> None:
    strict = make_gate(prices_file=tmp_path / "prices.toml", budget_max_wait_s=0)
    [admission] = admit(strict, [cents_job("big", 3)], now=NOON)
    assert admission.decision == "reject" and isinstance(admission.error, BudgetExceeded)


def test_waiters_keep_priority_order(gate: BudgetGate, database_url: str) -> None:
    """Given a critical 3-cent job waiting for the global budget (queued in SQL), a normal
    1-cent job that would fit waits behind it, while another critical job that fits runs.
    In one batch the critical job is decided first, whatever the order given."""
    sessions = get_sessionmaker(database_url)
    urgent = cents_job("urgent", 3, priority="critical")
    with sessions.begin() as session:
        jobs_repository.insert_new(session, [urgent], status=JobStatus.QUEUED, now=NOON)
        jobs_repository.claim(session, [urgent.id], now=NOON)
    [admission] = admit(gate, [urgent], now=NOON)
    assert admission.decision == "wait"
    with sessions.begin() as session:
        jobs_repository.wait_for_budget(session, {urgent.id: admission.waiting_for}, now=NOON)
    with sessions() as session:
        record = session.get(JobRecord, urgent.id)
        assert record is not None and record.status == "queued" and record.attempts == 0

    normal, critical = cents_job("normal", 1), cents_job("critical", 1, priority="critical")
    decisions = admit(gate, [normal, critical], now=NOON + timedelta(seconds=1))
    assert [(a.job_id, a.decision) for a in decisions] == [("normal", "wait"), ("critical", "run")]

    # One batch, no waiter in SQL yet: the critical job takes its turn first.
    with sessions.begin() as session:
        jobs_repository.requeue(session, [urgent.id])  # no longer waiting
    first, second = cents_job("low-first", 1), cents_job("urgent-2", 2, priority="critical")
    decisions = admit(gate, [first, second], now=NOON + timedelta(seconds=2))
    assert [(a.job_id, a.decision) for a in decisions] == [
        ("low-first", "wait"),
        ("urgent-2", "wait"),
    ]
