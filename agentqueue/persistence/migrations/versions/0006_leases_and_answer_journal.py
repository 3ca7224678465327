"""job leases, the provider answer journal, possibly repeated charges

Revision ID: 0006
Revises: 0005

A claim now records which worker holds the job and until when (`lease_owner`,
`lease_expires_at`), so a dead worker's jobs are sent again in seconds. Provider answers are
journaled in `provider_answers` the moment they arrive, before settlement. A ledger entry
charged for a call that may have been made without its answer being kept says so
(`possible_repeat_usd`, `charge_reason`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=128), nullable=True))
        batch_op.add_column(
            sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            "ix_jobs_status_lease_expires_at", ["status", "lease_expires_at"], unique=False
        )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "possible_repeat_usd",
                sa.Numeric(precision=28, scale=10),
                nullable=False,
                server_default="0",
            )
        )
        batch_op.add_column(sa.Column("charge_reason", sa.Text(), nullable=True))
    op.create_table(
        "provider_answers",
        sa.Column("job_id", sa.String(length=128), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_provider_answers")),
    )


def downgrade() -> None:
    op.drop_table("provider_answers")
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_column("charge_reason")
        batch_op.drop_column("possible_repeat_usd")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_status_lease_expires_at")
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("lease_owner")
