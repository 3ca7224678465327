"""usage rows only for scopes with a budget

Revision ID: 0004
Revises: 0003

Jobs now keep running usage rows only for (scope, period) pairs that have a budget; setting a
budget recounts its current window from the ledger entries. Rows of unbudgeted scopes are no
longer kept up to date, so they are removed here.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM budget_usage WHERE NOT EXISTS ("
        "SELECT 1 FROM budgets WHERE budgets.scope = budget_usage.scope "
        "AND budgets.period = budget_usage.period)"
    )


def downgrade() -> None:
    # Nothing to restore: the removed rows are derivable from ledger_entries.
    pass
