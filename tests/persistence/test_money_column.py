"""Money is exact in the ledger on both backends: to 10 decimal places, beyond what a float
holds, in SQL sums too; SQLite keeps integer units of 10^-10 USD, and the migration converts
the floats an older SQLite ledger holds to what they read back as before."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import StatementError

from agentqueue.budget.budget_limits import set_budget
from agentqueue.money import LARGEST_LEDGER_USD
from agentqueue.persistence.engine import dispose_all, get_sessionmaker
from agentqueue.persistence.ledger_reports import ledger_totals
from agentqueue.persistence.ledger_tables import BudgetRecord, LedgerEntryRecord
from agentqueue.persistence.migrate import ensure_embedded_schema, upgrade

NOW = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)
# 18 significant digits: a float keeps about 16, so this reads back as ...567892 through one.
BEYOND_A_FLOAT = Decimal("12345678.1234567891")


def entry(job_id: str, cost: Decimal) -> LedgerEntryRecord:
    return LedgerEntryRecord(
        job_id=job_id,
        state="settled",
        tenant="acme",
        agent_type="summarise",
        model="gpt-4o-mini",
        cost_usd=cost,
        standard_cost_usd=cost,
        usage_keys=[],
        day="2026-03-11",
        reserved_at=NOW,
        updated_at=NOW,
    )


def test_amounts_beyond_a_float_read_back_and_sum_exactly(database_url: str) -> None:
    """Given a limit and entries a float cannot hold, then each reads back exactly and the
    SQL sum over them is exact, with the ledger's 10 places."""
    sessions = get_sessionmaker(database_url)
    set_budget(sessions, "global", "daily", BEYOND_A_FLOAT, now=NOW, timezone="UTC")
    tenth_of_a_nano = Decimal("0.0000000001")
    with sessions.begin() as session:
        session.add(entry("big", BEYOND_A_FLOAT))
        session.add_all(entry(f"small-{n}", tenth_of_a_nano) for n in range(30))
    with sessions() as session:
        limit = session.scalar(select(BudgetRecord.limit_usd))
        costs = session.scalars(select(LedgerEntryRecord.cost_usd).order_by("job_id")).all()
        _jobs, spent, _avoided, _saved = ledger_totals(session)
    assert limit == BEYOND_A_FLOAT
    assert costs[0] == BEYOND_A_FLOAT
    assert set(costs[1:]) == {tenth_of_a_nano}
    assert spent == Decimal("12345678.1234567921")
    assert str(limit) == "12345678.1234567891"  # the scale PostgreSQL's NUMERIC returns


def test_sqlite_keeps_integer_units_and_refuses_floats(sqlite_url: str) -> None:
    sessions = get_sessionmaker(sqlite_url)
    set_budget(sessions, "global", "daily", Decimal("0.3"), now=NOW, timezone="UTC")
    database = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    stored = database.execute("SELECT limit_usd, typeof(limit_usd) FROM budgets").fetchone()
    database.close()
    assert stored == (3_000_000_000, "integer")
    refused = pytest.raises(StatementError, match="money must be a Decimal")
    with refused, sessions.begin() as session:
        session.add(entry("float", 0.1))  # type: ignore[arg-type]


def test_limits_beyond_the_ledger_are_refused(database_url: str) -> None:
    sessions = get_sessionmaker(database_url)
    set_budget(sessions, "global", "daily", LARGEST_LEDGER_USD, now=NOW, timezone="UTC")
    with pytest.raises(ValueError, match=r"at most 922337203\.6854775807 USD"):
        set_budget(
            sessions,
            "global",
            "daily",
            LARGEST_LEDGER_USD + Decimal("0.0000000001"),
            now=NOW,
            timezone="UTC",
        )
    with sessions() as session:
        assert session.scalar(select(BudgetRecord.limit_usd)) == LARGEST_LEDGER_USD


def test_migration_turns_an_older_sqlite_ledgers_floats_into_exact_units(tmp_path: Path) -> None:
    """Given a SQLite ledger at the revision before exact money, holding floats (and integers,
    which SQLite keeps for whole amounts), when it is opened as the embedded default is (which
    migrates it), then every amount reads back as it did before, now exactly."""
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    upgrade(url, "0007")
    database = sqlite3.connect(path)
    for job_id, cost in [("a", 0.1), ("b", 5), ("c", 0.0029290500), ("d", 12345.6789012345)]:
        database.execute(
            "INSERT INTO ledger_entries (job_id, state, tenant, agent_type, model, "
            "service_tier, reserved_usd, cost_usd, standard_cost_usd, avoided_usd, "
            "input_tokens_estimate, max_output_tokens, input_tokens, output_tokens, "
            "cached_input_tokens, usage_keys, day, possible_repeat_usd, reserved_at, "
            "updated_at) VALUES (?, 'settled', 't', 'a', 'm', 'standard', 0, ?, ?, 0, 0, 0, "
            "0, 0, 0, '[]', '2026-03-11', 0, '2026-03-11 12:00:00', '2026-03-11 12:00:00')",
            (job_id, cost, cost),
        )
    database.execute(
        "INSERT INTO budgets (scope, period, limit_usd, updated_at) "
        "VALUES ('global', 'daily', 250.5, '2026-03-11 12:00:00')"
    )
    database.commit()
    database.close()

    ensure_embedded_schema(url, auto_migrate=True)
    with get_sessionmaker(url)() as session:
        rows = session.execute(select(LedgerEntryRecord.job_id, LedgerEntryRecord.cost_usd))
        costs = {job_id: cost for job_id, cost in rows}
        limit = session.scalar(select(BudgetRecord.limit_usd))
        _jobs, spent, _avoided, _saved = ledger_totals(session)
    dispose_all()
    assert costs == {
        "a": Decimal("0.1"),
        "b": Decimal("5"),
        "c": Decimal("0.00292905"),
        "d": Decimal("12345.6789012345"),
    }
    assert limit == Decimal("250.5")
    assert spent == Decimal("12350.7818302845")
