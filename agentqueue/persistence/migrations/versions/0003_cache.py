"""L3 cache: cache_bodies (by content hash) and cache_entries

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cache_bodies",
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("body_hash", name=op.f("pk_cache_bodies")),
    )
    with op.batch_alter_table("cache_bodies", schema=None) as batch_op:
        batch_op.create_index("ix_cache_bodies_last_stored_at", ["last_stored_at"], unique=False)

    op.create_table(
        "cache_entries",
        sa.Column("cache_key", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("agent_type", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("policy", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("response_model", sa.String(length=128), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_input_tokens", sa.Integer(), nullable=False),
        sa.Column("finish_reason", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["body_hash"],
            ["cache_bodies.body_hash"],
            name=op.f("fk_cache_entries_body_hash_cache_bodies"),
        ),
        sa.PrimaryKeyConstraint("cache_key", name=op.f("pk_cache_entries")),
    )
    with op.batch_alter_table("cache_entries", schema=None) as batch_op:
        batch_op.create_index("ix_cache_entries_expires_at", ["expires_at"], unique=False)
        batch_op.create_index(
            "ix_cache_entries_tenant_agent_type", ["tenant", "agent_type"], unique=False
        )
        batch_op.create_index("ix_cache_entries_model", ["model"], unique=False)
        batch_op.create_index("ix_cache_entries_body_hash", ["body_hash"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cache_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_cache_entries_body_hash")
        batch_op.drop_index("ix_cache_entries_model")
        batch_op.drop_index("ix_cache_entries_tenant_agent_type")
        batch_op.drop_index("ix_cache_entries_expires_at")
    op.drop_table("cache_entries")

    with op.batch_alter_table("cache_bodies", schema=None) as batch_op:
        batch_op.drop_index("ix_cache_bodies_last_stored_at")
    op.drop_table("cache_bodies")
