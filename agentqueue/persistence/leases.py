"""Job leases in the `jobs` table: renew the ones a worker holds, take back the ones it lost.

A running job's lease says which worker holds it and until when; a queued job's lease says by
when its message should have been claimed. Callers own the session and its transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Table, and_, or_, select, update
from sqlalchemy.orm import Session

from agentqueue.jobs import JobStatus
from agentqueue.messaging import JobRef
from agentqueue.persistence.job_table import JobRecord

jobs: Table = JobRecord.__table__  # type: ignore[assignment]
RENEW_CHUNK = 500


def renew(session: Session, ids: Sequence[str], *, owner: str, until: datetime) -> int:
    """Extend `owner`'s leases on these running jobs; returns how many it still held."""
    renewed = 0
    for start in range(0, len(ids), RENEW_CHUNK):
        result = session.execute(
            update(jobs)
            .where(
                jobs.c.id.in_(list(ids[start : start + RENEW_CHUNK])),
                jobs.c.lease_owner == owner,
                jobs.c.status == JobStatus.RUNNING.value,
            )
            .values(lease_expires_at=until)
        )
        renewed += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return renewed


def take_expired(
    session: Session, *, now: datetime, lease_s: int, message_due: datetime, limit: int
) -> list[JobRef]:
    """Running jobs whose lease ran out (their worker died): back to queued, their message due
    by `message_due`. Two sweepers at once never take the same job (row locks, skipped)."""
    legacy = now - timedelta(seconds=lease_s)  # rows claimed before leases existed
    expired = or_(
        jobs.c.lease_expires_at < now,
        and_(jobs.c.lease_expires_at.is_(None), jobs.c.started_at < legacy),
    )
    return _take(session, JobStatus.RUNNING, expired, message_due, limit, None)


def take_unclaimed(
    session: Session,
    *,
    priorities: Sequence[str],
    now: datetime,
    lease_s: int,
    message_due: datetime,
    limit: int,
) -> list[JobRef]:
    """Queued jobs of these priorities whose message is overdue (it was lost with Redis or a
    dead worker's prefetch): due again by `message_due`."""
    if not priorities:
        return []
    submitted_before = now - timedelta(seconds=lease_s)
    overdue = or_(
        jobs.c.lease_expires_at < now,
        and_(jobs.c.lease_expires_at.is_(None), jobs.c.submitted_at < submitted_before),
    )
    return _take(session, JobStatus.QUEUED, overdue, message_due, limit, priorities)


def _take(
    session: Session,
    status: JobStatus,
    condition: object,
    message_due: datetime,
    limit: int,
    priorities: Sequence[str] | None,
) -> list[JobRef]:
    due = (
        select(jobs.c.id)
        .where(jobs.c.status == status.value, condition)  # type: ignore[arg-type]
        .order_by(jobs.c.submitted_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if priorities is not None:
        due = due.where(jobs.c.priority.in_(list(priorities)))
    ids = list(session.scalars(due))
    if not ids:
        return []
    rows = session.execute(
        update(jobs)
        .where(jobs.c.id.in_(ids), jobs.c.status == status.value, condition)  # type: ignore[arg-type]
        .values(status=JobStatus.QUEUED.value, lease_owner=None, lease_expires_at=message_due)
        .returning(jobs.c.id, jobs.c.agent_type, jobs.c.model, jobs.c.priority)
    ).all()
    return [JobRef(r.id, r.agent_type, r.model, r.priority) for r in rows]
