"""jobs waiting for budget room: since when, and for which budget

Revision ID: 0005
Revises: 0004

A job whose worst case does not fit only because other jobs' reservations hold the room waits
(queued) instead of being refused; these columns bound its wait and keep waiters in priority
order.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=True))
    op.add_column("jobs", sa.Column("waiting_for", sa.String(length=160), nullable=True))
    op.create_index("ix_jobs_waiting_since", "jobs", ["waiting_since"])


def downgrade() -> None:
    op.drop_index("ix_jobs_waiting_since", table_name="jobs")
    op.drop_column("jobs", "waiting_for")
    op.drop_column("jobs", "waiting_since")
