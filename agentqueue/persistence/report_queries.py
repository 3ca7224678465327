"""The rows `agentqueue report` draws from: ledger entries and job timings since a moment."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from agentqueue.persistence.job_table import JobRecord as J
from agentqueue.persistence.ledger_tables import LedgerEntryRecord as E

# Rows are streamed in chunks: a week of a busy system is millions of jobs.
CHUNK = 5000


@dataclass(frozen=True, slots=True)
class EntryRow:
    """One job's money: who, which model and tier, spent, standard price, avoided by cache."""

    job_id: str
    state: str
    day: str
    tenant: str
    agent_type: str
    model: str
    service_tier: str
    cost_usd: Decimal
    standard_cost_usd: Decimal
    avoided_usd: Decimal
    input_tokens: int
    output_tokens: int
    budget_action: str | None
    reserved_at: datetime
    settled_at: datetime | None


@dataclass(frozen=True, slots=True)
class JobRow:
    """One job's timing and the parts of its final result the report needs (JSON text)."""

    job_id: str
    priority: str
    status: str
    submitted_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    release_after: datetime | None
    result: str | None


def _money(value: object) -> Decimal:
    return Decimal(str(value or 0))


def ledger_entries(session: Session, *, since_day: str) -> Iterator[EntryRow]:
    """Entries of jobs reserved on `since_day` (local YYYY-MM-DD) or later, released ones
    excluded (they cost nothing and saved nothing)."""
    statement = (
        select(
            E.job_id,
            E.state,
            E.day,
            E.tenant,
            E.agent_type,
            E.model,
            E.service_tier,
            E.cost_usd,
            E.standard_cost_usd,
            E.avoided_usd,
            E.input_tokens,
            E.output_tokens,
            E.budget_action,
            E.reserved_at,
            E.settled_at,
        )
        .where(E.day >= since_day, E.state != "released")
        .execution_options(yield_per=CHUNK)
    )
    for row in session.execute(statement):
        yield EntryRow(
            row.job_id,
            row.state,
            row.day,
            row.tenant,
            row.agent_type,
            row.model,
            row.service_tier,
            _money(row.cost_usd),
            _money(row.standard_cost_usd),
            _money(row.avoided_usd),
            int(row.input_tokens or 0),
            int(row.output_tokens or 0),
            row.budget_action,
            row.reserved_at,
            row.settled_at,
        )


def jobs_since(session: Session, since: datetime) -> Iterator[JobRow]:
    """Jobs submitted at or after `since`, or still deferred (whenever submitted)."""
    statement = (
        select(
            J.id,
            J.priority,
            J.status,
            J.submitted_at,
            J.started_at,
            J.finished_at,
            J.release_after,
            J.result,
        )
        .where((J.submitted_at >= since) | (J.status == "deferred"))
        .execution_options(yield_per=CHUNK)
    )
    for row in session.execute(statement):
        yield JobRow(
            row.id,
            row.priority,
            row.status,
            row.submitted_at,
            row.started_at,
            row.finished_at,
            row.release_after,
            row.result,
        )


def job_payloads(session: Session, job_ids: list[str]) -> dict[str, str]:
    """The submitted job JSON of these jobs (to price what right-sizing saved)."""
    found: dict[str, str] = {}
    for start in range(0, len(job_ids), 500):
        chunk = job_ids[start : start + 500]
        found.update(session.execute(select(J.id, J.payload).where(J.id.in_(chunk))).tuples())
    return found
