"""A budget's usage in its current window, computed from the ledger entries.

Only scopes with a budget keep a running usage row, so a budget set in the middle of a window
starts from what the entries say was already spent and reserved in it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Protocol

from sqlalchemy import ColumnElement, and_, case, func, select, true
from sqlalchemy.orm import Session

from agentqueue.persistence.ledger_entries import ENTRIES, EntryState
from agentqueue.persistence.usage_rows import USAGE


class WindowSpan(Protocol):
    """A budget window as its usage row is keyed: period name, start, end."""

    @property
    def period(self) -> str: ...

    @property
    def start(self) -> datetime: ...

    @property
    def end(self) -> datetime: ...


# Entries whose cost is spent money (a reserved entry's is held, not spent).
_SPENT = (EntryState.SETTLED.value, EntryState.UNKNOWN_CALLS.value)


def _scope_filter(scope: str) -> ColumnElement[bool]:
    kind, _, name = scope.partition(":")
    if kind == "tenant":
        return ENTRIES.c.tenant == name
    if kind == "agent_type":
        return ENTRIES.c.agent_type == name
    return true()  # global: every job


def usage_from_entries(session: Session, scope: str, window: WindowSpan) -> tuple[Decimal, Decimal]:
    """(spent, reserved) of `scope` by jobs reserved inside `window` (calls charged apart
    count in the window of the reservation they were made under)."""
    where = and_(
        _scope_filter(scope),
        ENTRIES.c.reserved_at >= window.start,
        ENTRIES.c.reserved_at < window.end,
        ENTRIES.c.state.in_([*_SPENT, EntryState.RESERVED.value]),
    )
    # Exact on both backends: NUMERIC on PostgreSQL, integer units on SQLite (see MoneyType).
    is_spent = ENTRIES.c.state.in_(_SPENT)
    is_reserved = ENTRIES.c.state == EntryState.RESERVED.value
    statement = select(
        func.coalesce(func.sum(case((is_spent, ENTRIES.c.cost_usd), else_=0)), 0),
        func.coalesce(func.sum(case((is_reserved, ENTRIES.c.reserved_usd), else_=0)), 0),
    ).where(where)
    spent, reserved = session.execute(statement).one()
    return Decimal(spent), Decimal(reserved)


def write_usage(
    session: Session,
    scope: str,
    window: WindowSpan,
    spent: Decimal,
    reserved: Decimal,
    *,
    now: datetime,
) -> None:
    """Create or overwrite the usage row of `scope` in `window`."""
    key = and_(
        USAGE.c.scope == scope,
        USAGE.c.period == str(window.period),
        USAGE.c.window_start == window.start,
    )
    values = {"spent_usd": spent, "reserved_usd": reserved, "updated_at": now}
    changed = session.execute(USAGE.update().where(key).values(values))
    if changed.rowcount == 0:  # type: ignore[attr-defined]
        session.execute(
            USAGE.insert().values(
                scope=scope,
                period=str(window.period),
                window_start=window.start,
                window_end=window.end,
                **values,
            )
        )
