"""Keep a new budget's usage exact while workers write the ledger.

Usage rows exist only for scopes that have a budget (so unbudgeted jobs lock nothing shared).
Setting a budget computes its current window's row from the ledger entries; that sum is exact
only if no transaction is half-way through writing entries. On PostgreSQL every ledger-writing
transaction first takes `ROW EXCLUSIVE` on `ledger_entries` (writers never block each other
on it), and the backfill takes `SHARE`, which waits for those writers to finish and holds new
ones back until it commits; a writer held back then reads the budgets afresh. SQLite's
`BEGIN IMMEDIATE` already runs one writer at a time.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

_SHARED = text("LOCK TABLE ledger_entries IN ROW EXCLUSIVE MODE")
_EXCLUSIVE = text("LOCK TABLE ledger_entries IN SHARE MODE")
_HELD = "agentqueue.ledger_guard"


def join_ledger_writers(session: Session) -> None:
    """Call first in a transaction that writes ledger entries (before reading budgets)."""
    transaction = session.get_transaction()
    if session.info.get(_HELD) is transaction and transaction is not None:
        return  # already taken in this transaction
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_SHARED)
    session.info[_HELD] = session.get_transaction()


def exclude_ledger_writers(session: Session) -> None:
    """Call first in a transaction that derives usage from the entries (setting a budget)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_EXCLUSIVE)
