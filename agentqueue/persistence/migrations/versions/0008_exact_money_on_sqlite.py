"""exact money on SQLite: amounts as integer units of 10^-10 USD

Revision ID: 0008
Revises: 0007

SQLAlchemy stores `Numeric` on SQLite as floating point. Money columns there now hold an
integer count of 10^-10 USD (see `MoneyType`); this converts the amounts already written, each
to what it read back as before (the float rounded to 10 places). PostgreSQL keeps its exact
NUMERIC(28, 10) columns unchanged.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

MONEY_COLUMNS = (  # (table, column)
    ("budgets", "limit_usd"),
    ("budget_usage", "spent_usd"),
    ("budget_usage", "reserved_usd"),
    ("ledger_entries", "reserved_usd"),
    ("ledger_entries", "cost_usd"),
    ("ledger_entries", "standard_cost_usd"),
    ("ledger_entries", "avoided_usd"),
    ("ledger_entries", "possible_repeat_usd"),
    ("budget_alerts", "utilisation"),
)
DECIMALS = 10  # the ledger's scale; fixed here, as a migration must not follow later changes


def _units(value: float | int) -> int:
    amount = Decimal(f"{value:.{DECIMALS}f}") if isinstance(value, float) else Decimal(value)
    return int(amount.scaleb(DECIMALS).to_integral_value(rounding=ROUND_HALF_UP))


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "sqlite":
        return
    for table, column in MONEY_COLUMNS:
        rows = connection.exec_driver_sql(
            f"SELECT rowid, {column} FROM {table} WHERE {column} IS NOT NULL"
        ).all()
        changes = [{"id": rowid, "units": _units(value)} for rowid, value in rows]
        if changes:
            connection.execute(
                sa.text(f"UPDATE {table} SET {column} = :units WHERE rowid = :id"), changes
            )


def downgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "sqlite":
        return
    for table, column in MONEY_COLUMNS:
        op.execute(f"UPDATE {table} SET {column} = {column} / 1e{DECIMALS}")
