"""Cost ledger tables: budgets, running usage per window, one entry per job, sent alerts."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from agentqueue.persistence.base import Base, Money


class BudgetRecord(Base):
    """A hard limit in USD for one scope (global, tenant:<id>, agent_type:<name>) and period."""

    __tablename__ = "budgets"

    scope: Mapped[str] = mapped_column(String(128), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    limit_usd: Mapped[Money]
    updated_at: Mapped[datetime]


class BudgetUsageRecord(Base):
    """Running spend and reservations of one scope in one window.

    The window start is part of the key, so a new window starts a new row and nothing ever has
    to reset live spend; each reservation updates these rows in place (no sums over history).
    """

    __tablename__ = "budget_usage"

    scope: Mapped[str] = mapped_column(String(128), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    window_end: Mapped[datetime]
    spent_usd: Mapped[Money] = mapped_column(default=Decimal(0))
    reserved_usd: Mapped[Money] = mapped_column(default=Decimal(0))
    updated_at: Mapped[datetime]


class LedgerEntryRecord(Base):
    """Every dollar of one job: reservation, settlement, release or cache hit (one row a job)."""

    __tablename__ = "ledger_entries"

    job_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # reserved | settled | released | cache_hit
    tenant: Mapped[str] = mapped_column(String(64))
    agent_type: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    provider: Mapped[str | None] = mapped_column(String(64), default=None)
    service_tier: Mapped[str] = mapped_column(String(16), default="standard")
    reserved_usd: Mapped[Money] = mapped_column(default=Decimal(0))
    cost_usd: Mapped[Money] = mapped_column(default=Decimal(0))
    standard_cost_usd: Mapped[Money] = mapped_column(default=Decimal(0))
    avoided_usd: Mapped[Money] = mapped_column(default=Decimal(0))
    input_tokens_estimate: Mapped[int] = mapped_column(Integer, default=0)
    max_output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    # The usage rows this job was reserved against: [[scope, period, window_start_iso], ...].
    usage_keys: Mapped[list[Any]] = mapped_column(JSON)
    day: Mapped[str] = mapped_column(String(10))  # local date of the reservation, for history
    model_reason: Mapped[str | None] = mapped_column(Text, default=None)
    budget_action: Mapped[str | None] = mapped_column(String(32), default=None)
    # Charged for a provider call that may have been made by a crashed attempt whose answer
    # was never kept (included in cost_usd), and why.
    possible_repeat_usd: Mapped[Money] = mapped_column(default=Decimal(0), server_default="0")
    charge_reason: Mapped[str | None] = mapped_column(Text, default=None)
    reserved_at: Mapped[datetime]
    settled_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_ledger_entries_state_reserved_at", "state", "reserved_at"),
        Index("ix_ledger_entries_day_model", "day", "model"),
    )


class BudgetAlertRecord(Base):
    """One row per alert sent; the unique key makes a second alert for the same crossing a no-op."""

    __tablename__ = "budget_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(128))
    period: Mapped[str] = mapped_column(String(16))
    window_start: Mapped[datetime]
    threshold_bp: Mapped[int] = mapped_column(Integer)  # 8000 = 80.00 %
    utilisation: Mapped[Money]
    action: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("scope", "period", "window_start", "threshold_bp"),)
