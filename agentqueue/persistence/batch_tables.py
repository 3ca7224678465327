"""Provider batches (OpenAI Batch, Anthropic Message Batches) and the jobs waiting in them.

A batch row is written, with its members, before anything is sent to the provider, so a
crash at any point leaves a row that says what was (or may have been) sent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agentqueue.persistence.base import Base


class ProviderBatchRecord(Base):
    """One provider batch: `recorded` -> `submitting` -> `submitted` -> `settled`."""

    __tablename__ = "provider_batches"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    remote_id: Mapped[str | None] = mapped_column(String(128), default=None)
    remote_status: Mapped[str | None] = mapped_column(String(32), default=None)
    job_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    submitted_at: Mapped[datetime | None] = mapped_column(default=None)
    # The earliest deadline (minus expected run time) of its members: cancel before it.
    deadline: Mapped[datetime | None] = mapped_column(default=None)
    # Whoever works on the row holds it until then (a dead beat task's hold simply lapses).
    held_until: Mapped[datetime | None] = mapped_column(default=None)
    next_poll_at: Mapped[datetime | None] = mapped_column(default=None)
    polls: Mapped[int] = mapped_column(Integer, default=0)
    cancel_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ix_provider_batches_state_next_poll_at", "state", "next_poll_at"),)


class ProviderBatchJobRecord(Base):
    """A job waiting for a provider batch: its request, and the batch once it is in one."""

    __tablename__ = "provider_batch_jobs"

    job_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    batch_id: Mapped[str | None] = mapped_column(String(64), default=None)
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    request: Mapped[str] = mapped_column(Text)  # the ProviderRequest as JSON
    request_bytes: Mapped[int] = mapped_column(Integer)
    priority: Mapped[str] = mapped_column(String(16))
    deadline: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_provider_batch_jobs_batch_id", "batch_id"),
        Index("ix_provider_batch_jobs_provider_model", "provider", "model"),
    )
