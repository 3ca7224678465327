"""The `jobs` table: the durable record of every job from submit to its final state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agentqueue.persistence.base import Base


class JobRecord(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    agent_type: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    tenant: Mapped[str] = mapped_column(String(64))
    priority: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    payload: Mapped[str] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text, default=None)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    submitted_at: Mapped[datetime]
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    release_after: Mapped[datetime | None] = mapped_column(default=None)
    deadline: Mapped[datetime | None] = mapped_column(default=None)
    # Who holds a running job and until when; a queued job's lease is how long its message may
    # take to be claimed before the job is sent again (see scheduler/redelivery.py).
    lease_owner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    # A queued job waiting for budget room held by other jobs' reservations: since when (its
    # wait is bounded) and on which budget ("<period>:<scope>", so waiters keep their order).
    waiting_since: Mapped[datetime | None] = mapped_column(default=None)
    waiting_for: Mapped[str | None] = mapped_column(String(160), default=None)

    __table_args__ = (
        Index("ix_jobs_status_release_after", "status", "release_after"),
        Index("ix_jobs_tenant_submitted_at", "tenant", "submitted_at"),
        Index("ix_jobs_status_lease_expires_at", "status", "lease_expires_at"),
        Index("ix_jobs_waiting_since", "waiting_since"),
    )
