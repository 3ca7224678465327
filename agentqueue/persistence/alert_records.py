"""Budget alert rows: one per scope, window and threshold, whoever notices the crossing first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from agentqueue.persistence.ledger_tables import BudgetAlertRecord

ALERTS: Table = BudgetAlertRecord.__table__  # type: ignore[assignment]


def insert_new_alerts(session: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert each alert row (column values) unless its key exists; the positions inserted."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    inserted = []
    for position, row in enumerate(rows):
        statement = (
            insert(ALERTS)
            .values(**row)
            .on_conflict_do_nothing()
            .returning(ALERTS.c.id)  # rowcount is unreliable for INSERT on some drivers
        )
        if session.execute(statement).first() is not None:
            inserted.append(position)
    return inserted
