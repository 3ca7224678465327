"""Configured budgets: set or remove a limit; read each budget with its current window usage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker

from agentqueue.budget.periods import Period, Window, window_for
from agentqueue.budget.scopes import parse_scope
from agentqueue.money import LARGEST_LEDGER_USD
from agentqueue.persistence.ledger_guard import exclude_ledger_writers
from agentqueue.persistence.transactions import in_transaction
from agentqueue.persistence.usage_backfill import usage_from_entries, write_usage
from agentqueue.persistence.usage_rows import (
    LiveUsage,
    all_limits,
    delete_limit,
    read_rows,
    save_limit,
)


@dataclass(frozen=True, slots=True)
class BudgetUsage:
    """A configured budget and the usage of its current window (zero when nothing ran yet)."""

    scope: str
    period: Period
    limit_usd: Decimal
    window: Window
    spent_usd: Decimal
    reserved_usd: Decimal


def set_budget(
    factory: sessionmaker[Session],
    scope: str,
    period: str,
    limit_usd: Decimal,
    *,
    now: datetime,
    timezone: str,
) -> None:
    """Create or change the limit of `scope` for `period`; applies to the current window at once,
    counting what jobs already spent and reserved in it (from the ledger entries).

    Raises:
        ValueError: for an unknown scope or period, or a negative, non-finite or too large
            limit (over `LARGEST_LEDGER_USD`).
    """
    scope = parse_scope(scope)
    period = Period(period).value
    if not limit_usd.is_finite() or limit_usd < 0:
        raise ValueError(f"the limit must be a non-negative amount in USD, got {limit_usd}")
    if limit_usd > LARGEST_LEDGER_USD:
        raise ValueError(f"the limit must be at most {LARGEST_LEDGER_USD} USD, got {limit_usd}")

    window = window_for(period, now, timezone)

    def work(session: Session) -> None:
        exclude_ledger_writers(session)  # no entry half-written while we sum them
        save_limit(session, scope, period, limit_usd, now=now)
        spent, reserved = usage_from_entries(session, scope, window)
        write_usage(session, scope, window, spent, reserved, now=now)

    in_transaction(factory, work)


def remove_budget(factory: sessionmaker[Session], scope: str, period: str) -> bool:
    """Make `scope` unlimited for `period` again; True if a budget was removed."""
    scope = parse_scope(scope)
    period = Period(period).value

    return in_transaction(factory, lambda session: delete_limit(session, scope, period))


def read_budgets(
    factory: sessionmaker[Session], windows: Mapping[Period, Window]
) -> list[BudgetUsage]:
    """Every configured budget with the spend and reservations of its current window."""

    def work(session: Session) -> list[BudgetUsage]:
        known = {period.value for period in windows}
        limits = {key: limit for key, limit in all_limits(session).items() if key[1] in known}
        keys = [(scope, period, windows[Period(period)].start) for scope, period in limits]
        usage: dict[tuple[str, str, datetime], LiveUsage] = read_rows(session, keys)
        budgets = []
        for (scope, period), limit in sorted(limits.items()):
            window = windows[Period(period)]
            row = usage.get((scope, period, window.start))
            budgets.append(
                BudgetUsage(
                    scope=scope,
                    period=Period(period),
                    limit_usd=limit,
                    window=window,
                    spent_usd=row.spent if row else Decimal(0),
                    reserved_usd=row.reserved if row else Decimal(0),
                )
            )
        return budgets

    return in_transaction(factory, work)
