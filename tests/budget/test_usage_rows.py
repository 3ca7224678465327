"""Usage rows exist only for scopes with a budget; a budget set mid-window recounts exactly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agentqueue.budget.budget_limits import remove_budget, set_budget
from agentqueue.budget.gate import BudgetGate
from agentqueue.budget.periods import window_for
from agentqueue.persistence.engine import get_sessionmaker
from agentqueue.persistence.usage_backfill import usage_from_entries
from agentqueue.persistence.usage_rows import USAGE
from agentqueue.usage import TokenUsage
from tests.budget.conftest import NOON, admit, make_job, settle
from tests.budget.test_gate import FILLER_PRICES, fill, state_of

GateFactory = Callable[..., BudgetGate]
Limit = Callable[[str, str, str], None]


@pytest.fixture
def gate(make_gate: GateFactory, tmp_path: Path) -> BudgetGate:
    prices = tmp_path / "prices.toml"
    prices.write_text(FILLER_PRICES)
    return make_gate(prices_file=prices)


def usage_scopes(gate: BudgetGate) -> set[tuple[str, str]]:
    with gate.sessions() as session:
        return {(row.scope, row.period) for row in session.execute(select(USAGE))}


def test_jobs_without_budgets_keep_no_usage_rows(gate: BudgetGate, limit: Limit) -> None:
    """Given no budget, when jobs run, then no usage row exists (nothing shared is locked);
    when a tenant daily budget is set, then exactly that row appears."""
    fill(gate, 3, tenant="acme")
    fill(gate, 4, tenant="globex")
    assert usage_scopes(gate) == set()
    limit("tenant:acme", "daily", "1.00")
    fill(gate, 5, tenant="acme")
    fill(gate, 6, tenant="globex")
    assert usage_scopes(gate) == {("tenant:acme", "daily")}
    assert state_of(gate, "tenant:acme").spent_usd == Decimal("0.08")


def test_reservation_open_when_a_budget_is_set_settles_into_it(
    gate: BudgetGate, limit: Limit
) -> None:
    """Given a job reserved while no budget existed, when a budget is set, then its
    reservation counts; when it settles, then its cost moves to spent and nothing stays
    reserved."""
    job = make_job("open", model="filler", params={"max_tokens": 1}, tenant="acme")
    [admission] = admit(gate, [job], now=NOON)
    assert admission.decision == "run"
    limit("global", "daily", "1.00")
    assert state_of(gate, "global").reserved_usd == admission.reservation.reserved_usd
    settle(gate, {"open": TokenUsage(input_tokens=0, output_tokens=7)})
    state = state_of(gate, "global")
    assert (state.spent_usd, state.reserved_usd) == (Decimal("0.07"), 0)


def test_removed_budget_drops_its_row_and_a_new_one_recounts(
    gate: BudgetGate, limit: Limit
) -> None:
    """Given a budget with spend, when it is removed, then its row goes; spend meanwhile and a
    new budget later count everything spent in the window."""
    limit("tenant:acme", "daily", "1.00")
    fill(gate, 10)
    assert remove_budget(gate.sessions, "tenant:acme", "daily")
    assert usage_scopes(gate) == set()
    fill(gate, 15)
    limit("tenant:acme", "daily", "0.30")
    assert state_of(gate, "tenant:acme").spent_usd == Decimal("0.25")
    refused = make_job("too-much", model="filler", params={"max_tokens": 6}, tenant="acme")
    [admission] = admit(gate, [refused], now=NOON)
    assert admission.decision == "reject"


def assert_recounts_exact_while(
    gate: BudgetGate, sessions: sessionmaker[Session], step: Callable[[int, int], None]
) -> None:
    """Run `step(worker, index)` in 4 threads, each at least 5 times and on until a global
    daily budget has been set 20 times meanwhile; then the budget's row must equal the sum of
    the ledger entries (no reservation or settlement made during a recount lost or counted
    twice), with money both spent and reserved."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def run(worker: int) -> None:
        try:
            index = 0
            while not stop.is_set() or index < 5:
                index += 1
                step(worker, index)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for amount in range(1000, 1020):
        set_budget(sessions, "global", "daily", Decimal(amount), now=NOON, timezone="UTC")
        time.sleep(0.01)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    with sessions() as session:
        spent, reserved = usage_from_entries(session, "global", window_for("daily", NOON, "UTC"))
    state = state_of(gate, "global")
    assert (state.spent_usd, state.reserved_usd) == (spent, reserved)
    assert spent > 0 and reserved > 0


def test_budget_set_while_jobs_run_counts_every_job_exactly(
    gate: BudgetGate, database_url: str
) -> None:
    """Given 4 threads admitting and settling jobs, when a global budget is set (and set again)
    while they run, then afterwards the budget's row equals the sum of the ledger entries:
    no reservation or settlement made during the recount was lost or counted twice."""

    def step(worker: int, index: int) -> None:
        job = make_job(
            f"w{worker}-{index}", model="filler", params={"max_tokens": 1}, tenant="acme"
        )
        [admission] = admit(gate, [job], now=NOON)
        assert admission.decision == "run", admission.error
        if index % 3:  # leave every third reservation open
            settle(gate, {job.id: TokenUsage(input_tokens=0, output_tokens=1)})

    assert_recounts_exact_while(gate, get_sessionmaker(database_url), step)
