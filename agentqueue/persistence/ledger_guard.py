"""Keep a new budget's usage exact while workers write the ledger.

Usage rows exist only for scopes that have a budget (so unbudgeted jobs lock nothing shared).
Setting a budget computes its current window's row from the ledger entries; that sum is exact
only if no transaction is half-way through writing entries. On PostgreSQL every ledger-writing
transaction first takes `ROW EXCLUSIVE` on `ledger_entries` (writers never block each other
on it), and the backfill takes `SHARE`, which waits for those writers to finish and holds new
ones back until it commits; a writer held back then reads the budgets afresh. SQLite's
`BEGIN IMMEDIATE` already runs one writer at a time.

Where a statement that comes first anyway can carry the lock (`joined`), it costs no round trip
of its own: an `UPDATE ledger_entries ... WHERE false` in the statement's `WITH` takes
`ROW EXCLUSIVE` when the statement starts, as `LOCK TABLE` would, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import Result, Select, Table, Update, false, text, update
from sqlalchemy.orm import Session

from agentqueue.persistence.ledger_tables import LedgerEntryRecord

_ENTRIES: Table = LedgerEntryRecord.__table__  # type: ignore[assignment]
_SHARED = text("LOCK TABLE ledger_entries IN ROW EXCLUSIVE MODE")
_EXCLUSIVE = text("LOCK TABLE ledger_entries IN SHARE MODE")
# Writes no row; being an UPDATE of ledger_entries, it takes the writers' lock.
_WRITER = update(_ENTRIES).where(false()).values(state=_ENTRIES.c.state).cte("ledger_writer")
_HELD = "agentqueue.ledger_guard"

Statement = TypeVar("Statement", Select[Any], Update)


def _held(session: Session) -> bool:
    transaction = session.get_transaction()
    return transaction is not None and session.info.get(_HELD) is transaction


def _postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def join_ledger_writers(session: Session) -> None:
    """Call first in a transaction that writes ledger entries (before reading budgets)."""
    if _held(session):
        return  # already taken in this transaction
    if _postgresql(session):
        session.execute(_SHARED)
    session.info[_HELD] = session.get_transaction()


def joined(
    session: Session, statement: Statement, params: Mapping[str, Any] | None = None
) -> Result[Any]:
    """Execute `statement` having joined the ledger writers, the lock taken by the statement
    itself on PostgreSQL: a ledger-writing transaction whose first statement this is (or
    whose first ledger statement, before it reads budgets) pays no extra round trip."""
    if _held(session) or not _postgresql(session):
        result = session.execute(statement, params)
    else:
        result = session.execute(_with_writer(statement), params)
    session.info[_HELD] = session.get_transaction()
    return result


def _with_writer(statement: Statement) -> Statement:
    """`statement` with the writers' lock in its `WITH`, built once per statement object (the
    worker's statements are built once, at import)."""
    with_writer = _WITH_WRITER.get(statement)
    if with_writer is None:
        with_writer = _WITH_WRITER[statement] = statement.add_cte(_WRITER)
    return with_writer


_WITH_WRITER: WeakKeyDictionary[Any, Any] = WeakKeyDictionary()


def exclude_ledger_writers(session: Session) -> None:
    """Call first in a transaction that derives usage from the entries (setting a budget)."""
    if _postgresql(session):
        session.execute(_EXCLUSIVE)
