"""`agentqueue budget set|remove|show|history`: limits per scope and period, and the spend."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

import click
from sqlalchemy.orm import Session, sessionmaker

from agentqueue.budget.budget_limits import remove_budget, set_budget
from agentqueue.budget.gate import BudgetGate
from agentqueue.budget.history import read_history
from agentqueue.budget.periods import PERIODS, window_for
from agentqueue.budget.scopes import parse_scope
from agentqueue.budget.state import BudgetState
from agentqueue.money import LARGEST_LEDGER_USD, exact_usd, format_usd
from agentqueue.persistence.engine import get_sessionmaker
from agentqueue.persistence.migrate import ensure_embedded_schema
from agentqueue.settings import Settings, get_settings
from agentqueue.terminal import emit, new_table, wide_option

BAR_WIDTH = 20
PERIOD_CHOICE = click.Choice([period.value for period in PERIODS])


def _sessions(settings: Settings) -> sessionmaker[Session]:
    url = settings.resolved_database_url
    # A fresh embedded install can set a budget before any worker has started.
    ensure_embedded_schema(url, auto_migrate=settings.auto_migrate)
    return get_sessionmaker(url)


def _scope(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return parse_scope(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _limit(_ctx: click.Context, _param: click.Parameter, value: str) -> Decimal:
    try:
        amount = Decimal(value.strip().lstrip("$"))
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not an amount in USD, e.g. 25.00") from None
    if not amount.is_finite() or amount < 0:
        raise click.BadParameter("the limit must be zero or more USD")
    if amount > LARGEST_LEDGER_USD:
        raise click.BadParameter(f"the limit must be at most {exact_usd(LARGEST_LEDGER_USD)} USD")
    return amount


@click.group()
def budget() -> None:
    """Budgets per scope (global, tenant:<id>, agent_type:<name>) and period."""


@budget.command("set")
@click.option(
    "--scope", required=True, callback=_scope, help="global, tenant:<id> or agent_type:<name>"
)
@click.option("--period", type=PERIOD_CHOICE, required=True, help="Window the limit applies to.")
@click.option("--limit", "limit_usd", required=True, callback=_limit, help="Hard limit in USD.")
def budget_set(scope: str, period: str, limit_usd: Decimal) -> None:
    """Set the hard limit of a scope for a period (takes effect in the current window)."""
    settings = get_settings()
    now = datetime.now(UTC)
    set_budget(_sessions(settings), scope, period, limit_usd, now=now, timezone=settings.timezone)
    window = window_for(period, now, settings.timezone)
    click.echo(
        f"{scope} {period} budget set to {format_usd(limit_usd)} "
        f"(current window {window.label()}, {settings.timezone})"
    )


@budget.command("remove")
@click.option(
    "--scope", required=True, callback=_scope, help="global, tenant:<id> or agent_type:<name>"
)
@click.option("--period", type=PERIOD_CHOICE, required=True, help="Window the limit applied to.")
def budget_remove(scope: str, period: str) -> None:
    """Remove a limit: the scope becomes unlimited for that period."""
    removed = remove_budget(_sessions(get_settings()), scope, period)
    click.echo(f"{scope} {period} budget removed" if removed else f"no {period} budget for {scope}")


def _bar(utilisation: Decimal) -> str:
    filled = min(int(utilisation * BAR_WIDTH), BAR_WIDTH)
    return "[" + "#" * filled + "-" * (BAR_WIDTH - filled) + "]"


def _show_row(state: BudgetState) -> tuple[str, ...]:
    return (
        state.scope,
        state.period,
        state.window_label,
        format_usd(state.spent_usd),
        format_usd(state.reserved_usd),
        format_usd(state.limit_usd),
        f"{_bar(state.utilisation)} {state.utilisation * 100:5.1f}%",
        state.action,
    )


@budget.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (exact amounts) instead.")
@wide_option
def budget_show(as_json: bool, wide: bool) -> None:
    """Every budget in its current window: spent, reserved, limit, utilisation, action."""
    settings = get_settings()
    states = BudgetGate(_sessions(settings), settings).snapshot()
    if as_json:
        click.echo(json.dumps([state.as_dict() for state in states], indent=2))
        return
    if not states:
        click.echo("no budgets set; every scope is unlimited (see `agentqueue budget set`)")
        return
    money = ("spent", "reserved", "limit")
    table = new_table("scope", "period", "window", *money, "utilisation", "action", numeric=money)
    for state in states:
        table.add_row(*_show_row(state))
    emit(table, wide=wide)


@budget.command("history")
@click.option(
    "--days", default=7, show_default=True, type=click.IntRange(1, 3660), help="Days back."
)
@click.option("--tenant", default=None, help="Only this tenant's jobs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (exact amounts) instead.")
@wide_option
def budget_history(days: int, tenant: str | None, as_json: bool, wide: bool) -> None:
    """Spend per day and model (local days in AGENTQUEUE_TIMEZONE), newest first."""
    settings = get_settings()
    today = window_for("daily", datetime.now(UTC), settings.timezone).first_day
    since = (today - timedelta(days=days - 1)).isoformat()
    rows = read_history(_sessions(settings), since_day=since, tenant=tenant)
    if as_json:
        click.echo(json.dumps([row.as_dict() for row in rows], indent=2))
        return
    if not rows:
        click.echo(f"no spend recorded since {since}")
        return
    numbers = ("jobs", "cached", "spent", "reserved", "avoided", "tier saved", "tokens in/out")
    table = new_table("day", "model", *numbers, numeric=numbers)
    for row in rows:
        table.add_row(
            row.day,
            row.model,
            str(row.jobs),
            str(row.cache_hits),
            format_usd(row.spent_usd),
            format_usd(row.reserved_usd),
            format_usd(row.avoided_usd),
            format_usd(row.tier_savings_usd),
            f"{row.input_tokens:,}/{row.output_tokens:,}",
        )
    emit(table, wide=wide)
