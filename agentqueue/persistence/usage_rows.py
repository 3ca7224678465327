"""The running usage rows of budget windows and the budgets table: create if missing, lock,
read, write back; set and remove limits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, Table, bindparam, delete, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from agentqueue.persistence.ledger_tables import BudgetRecord, BudgetUsageRecord
from agentqueue.persistence.one_of import one_of

UsageKey = tuple[str, str, datetime]  # (scope, period, window_start)

USAGE: Table = BudgetUsageRecord.__table__  # type: ignore[assignment]
BUDGETS: Table = BudgetRecord.__table__  # type: ignore[assignment]


@dataclass(slots=True)
class LiveUsage:
    """One locked usage row, changed in memory during a transaction and written back once."""

    scope: str
    period: str
    window_start: datetime
    window_end: datetime
    spent: Decimal
    reserved: Decimal
    limit: Decimal | None = None
    dirty: bool = field(default=False, compare=False)

    @property
    def key(self) -> UsageKey:
        return (self.scope, self.period, self.window_start)

    @property
    def used(self) -> Decimal:
        return self.spent + self.reserved

    def would_cross(self, amount: Decimal) -> bool:
        return self.limit is not None and self.used + amount > self.limit

    def reserve(self, amount: Decimal) -> None:
        self.reserved += amount
        self.dirty = True

    def unreserve(self, amount: Decimal) -> None:
        # Never below zero, whatever an older bug or a hand edit left behind.
        self.reserved = max(self.reserved - amount, Decimal(0))
        self.dirty = True

    def spend(self, amount: Decimal) -> None:
        self.spent += amount
        self.dirty = True


def key_to_json(key: UsageKey) -> list[str]:
    return [key[0], key[1], key[2].isoformat()]


def key_from_json(value: Sequence[str]) -> UsageKey:
    return (value[0], value[1], datetime.fromisoformat(value[2]))


def insert_missing(session: Session, rows: dict[UsageKey, datetime], now: datetime) -> None:
    """Create zeroed usage rows for `rows` (key -> window end); existing rows are left alone."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = [
        {
            "scope": scope,
            "period": period,
            "window_start": start,
            "window_end": end,
            "spent_usd": Decimal(0),
            "reserved_usd": Decimal(0),
            "updated_at": now,
        }
        for (scope, period, start), end in sorted(rows.items())
    ]
    session.execute(insert(USAGE).values(values).on_conflict_do_nothing())


def _select_rows(keys: Iterable[UsageKey]) -> Select[Any] | None:
    wanted = sorted(set(keys))
    if not wanted:
        return None
    return select(
        USAGE.c.scope,
        USAGE.c.period,
        USAGE.c.window_start,
        USAGE.c.window_end,
        USAGE.c.spent_usd,
        USAGE.c.reserved_usd,
    ).where(tuple_(USAGE.c.scope, USAGE.c.period, USAGE.c.window_start).in_(wanted))


def lock_rows(session: Session, keys: Iterable[UsageKey]) -> dict[UsageKey, LiveUsage]:
    """Read and lock the usage rows of `keys`, in key order so concurrent lockers never deadlock.

    PostgreSQL takes row locks (SELECT ... FOR UPDATE); SQLite already holds the write lock
    from BEGIN IMMEDIATE. Missing rows are simply absent from the result.
    """
    statement = _select_rows(keys)
    if statement is None:
        return {}
    statement = statement.order_by(
        USAGE.c.scope, USAGE.c.period, USAGE.c.window_start
    ).with_for_update()
    rows = (LiveUsage(*values) for values in session.execute(statement))
    return {row.key: row for row in rows}


def read_rows(session: Session, keys: Iterable[UsageKey]) -> dict[UsageKey, LiveUsage]:
    """Like `lock_rows` without the lock, for reports."""
    statement = _select_rows(keys)
    if statement is None:
        return {}
    rows = (LiveUsage(*values) for values in session.execute(statement))
    return {row.key: row for row in rows}


# One usage row by its key, for the executemany statements below (built once: they run in
# every admission and settlement).
_ROW_BY_KEY = (
    USAGE.c.scope == bindparam("k_scope"),
    USAGE.c.period == bindparam("k_period"),
    USAGE.c.window_start == bindparam("k_start", type_=USAGE.c.window_start.type),
)
_WRITE_BACK = (
    update(USAGE)
    .where(*_ROW_BY_KEY)
    .values(
        spent_usd=bindparam("spent_usd"),
        reserved_usd=bindparam("reserved_usd"),
        updated_at=bindparam("updated_at"),
    )
)
_ADD_TO_ROWS = (
    update(USAGE)
    .where(*_ROW_BY_KEY)
    .values(
        spent_usd=USAGE.c.spent_usd + bindparam("d_spent", type_=USAGE.c.spent_usd.type),
        reserved_usd=func.greatest(
            USAGE.c.reserved_usd - bindparam("d_unreserved", type_=USAGE.c.reserved_usd.type), 0
        ),
        updated_at=bindparam("updated_at"),
    )
)


def write_back(session: Session, rows: Iterable[LiveUsage], now: datetime) -> None:
    """Store the new spent and reserved amounts of the changed rows (one executemany)."""
    changed = [
        {
            "k_scope": row.scope,
            "k_period": row.period,
            "k_start": row.window_start,
            "spent_usd": row.spent,
            "reserved_usd": row.reserved,
            "updated_at": now,
        }
        for row in rows
        if row.dirty
    ]
    if changed:
        session.connection().execute(_WRITE_BACK, changed)


def add_to_rows(
    session: Session, deltas: Mapping[UsageKey, tuple[Decimal, Decimal]], now: datetime
) -> None:
    """Add `spent` and take `unreserved` (key -> (spent, unreserved); reserved never below
    zero) from the rows that exist, in key order, in SQL (PostgreSQL, exact NUMERIC): each row
    is locked by its own UPDATE, only from there to the commit (one executemany)."""
    changed = [
        {
            "k_scope": key[0],
            "k_period": key[1],
            "k_start": key[2],
            "d_spent": spent,
            "d_unreserved": unreserved,
            "updated_at": now,
        }
        for key, (spent, unreserved) in sorted(deltas.items())
        if spent or unreserved
    ]
    if changed:
        session.connection().execute(_ADD_TO_ROWS, changed)


def load_limits(session: Session, scopes: Iterable[str]) -> dict[tuple[str, str], Decimal]:
    """Configured limits of `scopes` by (scope, period); scopes without a row are unlimited."""
    wanted = sorted(set(scopes))
    if not wanted:
        return {}
    rows = session.execute(_LIMITS_OF, {"limit_scopes": wanted})
    return {(scope, period): limit for scope, period, limit in rows}


_LIMITS_OF = select(BUDGETS.c.scope, BUDGETS.c.period, BUDGETS.c.limit_usd).where(
    one_of(BUDGETS.c.scope, "limit_scopes")
)


def all_limits(session: Session) -> dict[tuple[str, str], Decimal]:
    statement = select(BUDGETS.c.scope, BUDGETS.c.period, BUDGETS.c.limit_usd)
    return {(scope, period): limit for scope, period, limit in session.execute(statement)}


def save_limit(
    session: Session, scope: str, period: str, limit_usd: Decimal, *, now: datetime
) -> None:
    """Create or change the limit of `scope` for `period`."""
    key = (BUDGETS.c.scope == scope) & (BUDGETS.c.period == period)
    changed = session.execute(
        update(BUDGETS).where(key).values(limit_usd=limit_usd, updated_at=now)
    )
    if changed.rowcount == 0:  # type: ignore[attr-defined]
        session.execute(
            BUDGETS.insert().values(scope=scope, period=period, limit_usd=limit_usd, updated_at=now)
        )


def delete_limit(session: Session, scope: str, period: str) -> bool:
    """Make `scope` unlimited for `period`; True if it had a limit."""
    key = (BUDGETS.c.scope == scope) & (BUDGETS.c.period == period)
    # Unbudgeted scopes keep no usage rows: a later budget recounts from the entries.
    session.execute(delete(USAGE).where((USAGE.c.scope == scope) & (USAGE.c.period == period)))
    return bool(session.execute(delete(BUDGETS).where(key)).rowcount)  # type: ignore[attr-defined]
