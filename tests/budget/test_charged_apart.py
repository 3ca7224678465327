"""Calls of unknown outcome charged apart from a job's entry: the job moves to a fallback
model, so its entry is released and will be reserved again at that model. The calls are
charged with the release, on a row of their own in the released reservation's day and window;
reports count them as spend, not as jobs (also when summing over the job's own id, as the
demo does), and a recount of the entries (a budget's backfill) equals the live usage row,
before and after the job's entry is reserved again and settled (real SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from agentqueue.budget.gate import BudgetGate
from agentqueue.budget.periods import window_for
from agentqueue.budget.possible_repeats import IN_TRANSIT_REPEAT_REASON, PossibleRepeat
from agentqueue.persistence.ledger_reports import ledger_totals, spend_by_day_and_model
from agentqueue.persistence.ledger_tables import LedgerEntryRecord
from agentqueue.persistence.usage_backfill import usage_from_entries
from agentqueue.usage import TokenUsage
from tests.budget.conftest import NOON, admit, make_job, settle
from tests.budget.test_gate import state_of

Limit = Callable[[str, str, str], None]


def entries(gate: BudgetGate) -> dict[str, LedgerEntryRecord]:
    with gate.sessions() as session:
        return {e.job_id: e for e in session.scalars(select(LedgerEntryRecord))}


def assert_row_equals_recount(gate: BudgetGate) -> None:
    with gate.sessions() as session:
        recount = usage_from_entries(session, "tenant:acme", window_for("daily", NOON, "UTC"))
    state = state_of(gate, "tenant:acme")
    assert (state.spent_usd, state.reserved_usd) == recount


def test_calls_charged_apart_are_spent_once_in_their_window_and_reports(
    make_gate: Callable[..., BudgetGate], limit: Limit
) -> None:
    """Given a job reserved under a tenant budget, when it is released to move to a fallback
    with two calls of unknown outcome, then a row of their own holds twice the reservation,
    the usage row spends it and holds nothing, reports count it as spend and not as a job,
    and a recount agrees; released again (a rerun), nothing more is charged; when the job is
    reserved again and settled, its own entry holds only its usage and the charge stays as
    it was, counted once."""
    limit("tenant:acme", "daily", "1.00")
    gate = make_gate()
    [first] = admit(gate, [make_job("moved")], now=NOON)
    assert first.decision == "run"
    reserved = first.reservation.reserved_usd
    unknown = {"moved": PossibleRepeat(in_transit=2)}

    later = NOON + timedelta(minutes=1)
    assert gate.ledger.release_moving(unknown, now=later) == {"moved": 2 * reserved}
    assert gate.ledger.release_moving(unknown, now=later) == {}  # a rerun: nothing more

    rows = entries(gate)
    assert (rows["moved"].state, rows["moved"].cost_usd) == ("released", 0)
    [key] = [k for k in rows if k != "moved"]
    assert key.startswith("moved:unknown-calls:")
    apart = rows[key]
    assert (apart.state, apart.tenant, apart.model) == ("unknown_calls", "acme", "gpt-4o-mini")
    assert apart.cost_usd == apart.possible_repeat_usd == 2 * reserved > 0
    assert apart.charge_reason == IN_TRANSIT_REPEAT_REASON
    assert (apart.day, apart.reserved_at) == (rows["moved"].day, rows["moved"].reserved_at)
    state = state_of(gate, "tenant:acme")
    assert (state.spent_usd, state.reserved_usd) == (2 * reserved, 0)
    assert_row_equals_recount(gate)
    with gate.sessions() as session:
        assert ledger_totals(session)[:2] == (1, 2 * reserved)
        # Over the job's own id (as the demo sums its run): its charges apart count too.
        assert ledger_totals(session, ["moved"])[:2] == (1, 2 * reserved)
        assert ledger_totals(session, ["other"])[:2] == (0, 0)
        [(_day, model, jobs, _hits, spent, *_)] = spend_by_day_and_model(session, since_day="")
    assert (model, jobs, Decimal(spent)) == ("gpt-4o-mini", 0, 2 * reserved)

    [again] = admit(gate, [make_job("moved")], now=NOON + timedelta(minutes=2))
    assert again.decision == "run" and not again.carried_over
    costs = settle(gate, {"moved": TokenUsage(input_tokens=10, output_tokens=20)})

    rows = entries(gate)
    assert rows["moved"].state == "settled" and rows["moved"].cost_usd == costs["moved"] > 0
    assert rows["moved"].possible_repeat_usd == 0
    assert rows[key].cost_usd == 2 * reserved
    assert state_of(gate, "tenant:acme").spent_usd == costs["moved"] + 2 * reserved
    assert state_of(gate, "tenant:acme").reserved_usd == 0
    assert_row_equals_recount(gate)
    with gate.sessions() as session:
        assert ledger_totals(session)[:2] == (1, costs["moved"] + 2 * reserved)
        assert ledger_totals(session, ["moved"])[:2] == (1, costs["moved"] + 2 * reserved)
