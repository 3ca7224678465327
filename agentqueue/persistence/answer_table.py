"""The provider answer journal: an answer is written here the moment it arrives.

A worker that dies after paying for an answer and before settling it leaves the answer here,
so the job's next attempt settles from it instead of calling (and paying) again. The row is
deleted in the transaction that settles the job.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agentqueue.persistence.base import Base


class ProviderAnswerRecord(Base):
    __tablename__ = "provider_answers"

    job_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    answer: Mapped[str] = mapped_column(Text)  # a CacheEntry as JSON
    answered_at: Mapped[datetime]
