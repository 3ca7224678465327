"""Acceptance 1: eight processes race for one budget and it is never overspent nor underused."""

from __future__ import annotations

import multiprocessing
import queue
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from agentqueue.budget.budget_limits import set_budget
from agentqueue.budget.gate import BudgetGate
from agentqueue.budget.price_overrides import load_price_overrides
from agentqueue.budget.pricing import PriceBook
from agentqueue.persistence.engine import dispose_all, get_sessionmaker
from agentqueue.persistence.ledger_tables import LedgerEntryRecord
from agentqueue.settings import load_settings
from tests.budget.conftest import NOON
from tests.budget.race_worker import race, redeliver

PROCESSES = 8
JOBS_PER_PROCESS = 20
LIMIT = Decimal("0.50")
# About a cent a job (input nearly free, $0.01 per output token, max_tokens 1).
PRICES = '[models."race-model"]\ninput_per_mtok = 0.0001\noutput_per_mtok = 10000\n'


def collect(workers: list[Any], results: Any, *, timeout: float = 180) -> list[dict[str, Any]]:
    """One report per worker; fail fast (not after the timeout) when a worker crashes."""
    reports: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(reports) < len(workers):
        try:
            reports.append(results.get(timeout=0.5))
        except queue.Empty:
            crashed = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            assert not crashed, f"a racing process crashed (exit codes {crashed})"
            assert time.monotonic() < deadline, "racing processes did not finish in time"
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    return reports


def test_eight_processes_never_overspend_and_refuse_only_when_full(
    database_url: str, tmp_path: Path
) -> None:
    """Given a $0.50 daily budget and 8 processes (spawned) each admitting and settling 20
    identical jobs of cost c in batches of 1 or 3 at the same moment, where a job told to
    wait for room other jobs' reservations hold asks again, then:
    - the total charged never exceeds the limit, and
    - exactly floor(limit / c) jobs ran: since every success costs c and nothing is released,
      fewer successes would mean some refusal happened while c still fitted;
    - every refusal happened when the money SPENT left no room (spent + needed > limit):
      no job was refused while room remained once the reservations settled;
    - the ledger rows agree: spent = successes x c, nothing left reserved."""
    prices_file = tmp_path / "prices.toml"
    prices_file.write_text(PRICES)
    settings = load_settings(database_url=database_url, prices_file=prices_file)
    sessions = get_sessionmaker(database_url)
    set_budget(sessions, "global", "daily", LIMIT, now=NOON, timezone="UTC")
    gate = BudgetGate(sessions, settings)
    unit_cost = PriceBook(load_price_overrides(prices_file)).price("race-model").cost(8, 1)
    expected_successes = int(LIMIT // unit_cost)
    assert expected_successes < PROCESSES * JOBS_PER_PROCESS  # the budget really runs out
    dispose_all()  # no connections inherited by the children

    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    results = context.Queue()
    workers = [
        context.Process(
            target=race,
            args=(
                n,
                database_url,
                str(prices_file),
                JOBS_PER_PROCESS,
                1 + 2 * (n % 2),
                start,
                results,
            ),
        )
        for n in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    reports = collect(workers, results)

    charged = [Decimal(cost) for report in reports for cost in report["charged"]]
    refusals = [refusal for report in reports for refusal in report["refusals"]]
    assert all(cost == unit_cost for cost in charged)
    assert sum(charged) <= LIMIT
    assert len(charged) == expected_successes
    assert len(refusals) == PROCESSES * JOBS_PER_PROCESS - expected_successes
    for spent, needed, limit in refusals:
        assert Decimal(spent) + Decimal(needed) > Decimal(limit) == LIMIT

    [today] = [s for s in gate.snapshot() if s.period == "daily"]
    assert today.spent_usd == expected_successes * unit_cost
    assert today.reserved_usd == 0
    with sessions() as session:
        settled = session.scalar(select(func.count()).where(LedgerEntryRecord.state == "settled"))
    assert settled == expected_successes


def test_the_same_jobs_delivered_to_four_processes_are_charged_once(
    database_url: str, tmp_path: Path
) -> None:
    """Given 10 jobs each delivered to 4 processes at once (at-least-once delivery), when all
    admit and settle them, then every process may run each job but the ledger charges each
    exactly once and nothing stays reserved (acceptance 2 under concurrency)."""
    prices_file = tmp_path / "prices.toml"
    prices_file.write_text(PRICES)
    sessions = get_sessionmaker(database_url)
    set_budget(sessions, "global", "daily", Decimal("100"), now=NOON, timezone="UTC")
    unit_cost = PriceBook(load_price_overrides(prices_file)).price("race-model").cost(8, 1)
    dispose_all()

    context = multiprocessing.get_context("spawn")
    start = context.Barrier(4)
    results = context.Queue()
    workers = [
        context.Process(
            target=redeliver, args=(n, database_url, str(prices_file), 10, start, results)
        )
        for n in range(4)
    ]
    for worker in workers:
        worker.start()
    reports = collect(workers, results)
    assert all(decision == "run" for r in reports for decision, _ in r["outcomes"])

    settings = load_settings(database_url=database_url, prices_file=prices_file)
    [today] = [s for s in BudgetGate(sessions, settings).snapshot() if s.period == "daily"]
    assert today.spent_usd == 10 * unit_cost
    assert today.reserved_usd == 0
    with sessions() as session:
        costs = session.scalars(select(LedgerEntryRecord.cost_usd)).all()
    assert sorted(costs) == [unit_cost] * 10
