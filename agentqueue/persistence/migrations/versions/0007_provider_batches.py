"""provider_batches and provider_batch_jobs

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = sa.DateTime(timezone=True)
    op.create_table(
        "provider_batches",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("remote_id", sa.String(length=128), nullable=True),
        sa.Column("remote_status", sa.String(length=32), nullable=True),
        sa.Column("job_count", sa.Integer(), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("submitted_at", when, nullable=True),
        sa.Column("deadline", when, nullable=True),
        sa.Column("held_until", when, nullable=True),
        sa.Column("next_poll_at", when, nullable=True),
        sa.Column("polls", sa.Integer(), nullable=False),
        sa.Column("cancel_reason", sa.String(length=64), nullable=True),
        sa.Column("updated_at", when, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_batches")),
    )
    op.create_index(
        "ix_provider_batches_state_next_poll_at", "provider_batches", ["state", "next_poll_at"]
    )
    op.create_table(
        "provider_batch_jobs",
        sa.Column("job_id", sa.String(length=128), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=True),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("request_bytes", sa.Integer(), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("deadline", when, nullable=True),
        sa.Column("created_at", when, nullable=False),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_provider_batch_jobs")),
    )
    op.create_index("ix_provider_batch_jobs_batch_id", "provider_batch_jobs", ["batch_id"])
    op.create_index(
        "ix_provider_batch_jobs_provider_model", "provider_batch_jobs", ["provider", "model"]
    )


def downgrade() -> None:
    op.drop_table("provider_batch_jobs")
    op.drop_table("provider_batches")
