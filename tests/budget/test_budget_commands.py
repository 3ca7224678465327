"""`agentqueue budget set|show|history|remove`, run through click's CliRunner on a real database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from agentqueue.budget.gate import BudgetGate, CacheHit
from agentqueue.cli.budget_commands import budget
from agentqueue.persistence.engine import get_sessionmaker
from agentqueue.settings import get_settings, load_settings
from agentqueue.usage import TokenUsage
from tests.budget.conftest import admit, make_job, record_hits, settle


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AGENTQUEUE_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()


def run(*args: str) -> str:
    result = CliRunner().invoke(budget, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def spend(database_url: str) -> None:
    """One gpt-4o-mini job settled and one gpt-4o cache hit, today."""
    gate = BudgetGate(get_sessionmaker(database_url), load_settings(database_url=database_url))
    admit(gate, [make_job("cli-1")], now=datetime.now(UTC))
    settle(gate, {"cli-1": TokenUsage(1_000_000, 100_000)})  # $0.15 + $0.06
    record_hits(gate, [CacheHit("cli-2", "acme", "summarise", "gpt-4o", TokenUsage(1000, 100))])


def test_set_then_show_as_table_and_json(cli_env: str) -> None:
    """Given `budget set` for a tenant, when jobs spend $0.21 of $1.00, then `budget show`
    lists scope, period, window, spent, limit, a bar and the action; --json has the same."""
    out = run("set", "--scope", "tenant:acme", "--period", "daily", "--limit", "1.00")
    assert "tenant:acme daily budget set to $1.00" in out
    spend(cli_env)
    table = run("show")
    line = next(row for row in table.splitlines() if row.startswith("tenant:acme"))
    assert "daily" in line and "$0.21" in line and "$1.00" in line
    assert "[####----------------]  21.0%" in line and line.endswith("none")
    [state] = json.loads(run("show", "--json"))
    assert state["scope"] == "tenant:acme" and state["spent_usd"].startswith("0.21")
    assert state["utilisation"] == "0.2100" and state["action"] == "none"


def test_set_changes_an_existing_limit_and_remove_makes_it_unlimited(cli_env: str) -> None:
    run("set", "--scope", "global", "--period", "monthly", "--limit", "100")
    run("set", "--scope", "global", "--period", "monthly", "--limit", "$250.50")
    [state] = json.loads(run("show", "--json"))
    assert state["limit_usd"].startswith("250.5")
    assert "removed" in run("remove", "--scope", "global", "--period", "monthly")
    assert "no budgets set" in run("show")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scope", "team:x", "--period", "daily", "--limit", "1"], "unknown scope"),
        (["--scope", "global", "--period", "yearly", "--limit", "1"], "yearly"),
        (["--scope", "global", "--period", "daily", "--limit", "lots"], "not an amount"),
        (["--scope", "global", "--period", "daily", "--limit", "-5"], "zero or more"),
        (["--scope", "global", "--period", "daily", "--limit", "1e9"], "at most 922337203.68"),
    ],
)
def test_bad_input_is_refused_with_a_reason(cli_env: str, args: list[str], message: str) -> None:
    result = CliRunner().invoke(budget, ["set", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_history_per_day_and_model(cli_env: str) -> None:
    """Given a settled job and a cache hit today, then history shows one row per model with
    spend, cache hits and avoided cost."""
    spend(cli_env)
    rows = json.loads(run("history", "--json"))
    by_model = {row["model"]: row for row in rows}
    assert set(by_model) == {"gpt-4o-mini", "gpt-4o"}
    assert by_model["gpt-4o-mini"]["spent_usd"].startswith("0.21")
    assert by_model["gpt-4o-mini"]["input_tokens"] == 1_000_000
    assert by_model["gpt-4o"]["cache_hits"] == 1
    assert by_model["gpt-4o"]["avoided_usd"].startswith("0.0035")
    table = run("history", "--days", "1")
    assert "gpt-4o-mini" in table and "$0.21" in table
    assert "no spend" in run("history", "--tenant", "nobody")
