"""Read back what the ledger recorded for finished jobs (for the workers' metrics)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from agentqueue.persistence.ledger_tables import LedgerEntryRecord as E


@dataclass(frozen=True, slots=True)
class JobMoney:
    """One job's ledger entry, as money: spent, its standard-tier price, what cache avoided."""

    job_id: str
    state: str
    tenant: str
    model: str
    service_tier: str
    cost_usd: Decimal
    standard_cost_usd: Decimal
    avoided_usd: Decimal


def read_job_money(session: Session, job_ids: Sequence[str]) -> dict[str, JobMoney]:
    """The ledger entries of these jobs (jobs without one are absent)."""
    if not job_ids:
        return {}
    rows = session.execute(
        select(
            E.job_id,
            E.state,
            E.tenant,
            E.model,
            E.service_tier,
            E.cost_usd,
            E.standard_cost_usd,
            E.avoided_usd,
        ).where(E.job_id.in_(sorted(set(job_ids))))
    )
    return {
        row.job_id: JobMoney(
            row.job_id,
            row.state,
            row.tenant,
            row.model,
            row.service_tier,
            Decimal(row.cost_usd or 0),
            Decimal(row.standard_cost_usd or 0),
            Decimal(row.avoided_usd or 0),
        )
        for row in rows
    }


def deferred_backlog(session: Session) -> dict[str, int]:
    """Deferred jobs waiting for the off-peak window, by priority."""
    from sqlalchemy import func

    from agentqueue.persistence.job_table import JobRecord

    rows = session.execute(
        select(JobRecord.priority, func.count())
        .where(JobRecord.status == "deferred")
        .group_by(JobRecord.priority)
    )
    return {str(priority): int(count) for priority, count in rows}
