"""Reads and writes of provider batches and their jobs. Callers own the session's transaction.

Every state change is a guarded UPDATE (`WHERE state = <expected>`), so two beat tasks running
at once (two beats by mistake) never both act on one batch or put one job in two batches.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, Table, delete, or_, select, update
from sqlalchemy.orm import Session

from agentqueue.jobs import JobStatus
from agentqueue.persistence.batch_tables import ProviderBatchJobRecord, ProviderBatchRecord
from agentqueue.persistence.jobs_repository import jobs

batches: Table = ProviderBatchRecord.__table__  # type: ignore[assignment]
members: Table = ProviderBatchJobRecord.__table__  # type: ignore[assignment]

RECORDED, SUBMITTING, SUBMITTED, CANCELLING, SETTLED = (
    "recorded",
    "submitting",
    "submitted",
    "cancelling",
    "settled",
)


class BatchRace(Exception):
    """Two callers grouped the same jobs at once; the caller rolls back and tries next run."""


@dataclass(frozen=True, slots=True)
class BatchRow:
    id: str
    provider: str
    model: str
    state: str
    remote_id: str | None
    deadline: datetime | None
    polls: int


def enlist(session: Session, rows: Sequence[Mapping[str, object]]) -> set[str]:
    """Running jobs wait for a provider batch: their requests recorded, their status `batched`.
    Returns the ids moved (a job another delivery finished meanwhile is left alone)."""
    ids = [str(row["job_id"]) for row in rows]
    moved = {
        r.id
        for r in session.execute(
            update(jobs)
            .where(jobs.c.id.in_(ids), jobs.c.status == JobStatus.RUNNING.value)
            .values(status=JobStatus.BATCHED.value)
            .returning(jobs.c.id)
        )
    }
    wanted = [row for row in rows if row["job_id"] in moved]
    if wanted:
        session.execute(delete(members).where(members.c.job_id.in_(list(moved))))
        session.execute(members.insert(), list(wanted))
    return moved


def form_batches(
    session: Session, *, now: datetime, limits: Mapping[str, tuple[int, int]]
) -> list[str]:
    """Group jobs not yet in a batch by (provider, model) into `recorded` batches within each
    provider's request and byte limits; returns the new batch ids. Nothing is sent here."""
    pending = session.execute(
        select(
            members.c.job_id,
            members.c.provider,
            members.c.model,
            members.c.request_bytes,
            members.c.deadline,
        )
        .where(members.c.batch_id.is_(None))
        .order_by(members.c.provider, members.c.model, members.c.created_at, members.c.job_id)
    ).all()
    chunks: list[tuple[str, str, list[str], datetime | None]] = []
    size = 0
    for row in pending:
        most_requests, most_bytes = limits.get(row.provider, (50_000, 200 * 1024 * 1024))
        last = chunks[-1] if chunks else None
        if (
            last is None
            or (last[0], last[1]) != (row.provider, row.model)
            or len(last[2]) >= most_requests
            or size + row.request_bytes > most_bytes
        ):
            chunks.append((row.provider, row.model, [], None))
            size = 0
        provider, model, ids, deadline = chunks[-1]
        ids.append(row.job_id)
        size += row.request_bytes
        if row.deadline is not None and (deadline is None or row.deadline < deadline):
            chunks[-1] = (provider, model, ids, row.deadline)
    created = []
    for provider, model, ids, deadline in chunks:
        batch_id = f"aqb_{uuid.uuid4().hex}"
        taken: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            update(members)
            .where(members.c.job_id.in_(ids), members.c.batch_id.is_(None))
            .values(batch_id=batch_id)
        )
        if taken.rowcount != len(ids):
            raise BatchRace("another beat task formed batches at the same moment")
        session.execute(
            batches.insert().values(
                id=batch_id,
                provider=provider,
                model=model,
                state=RECORDED,
                job_count=len(ids),
                created_at=now,
                deadline=deadline,
                polls=0,
                updated_at=now,
            )
        )
        created.append(batch_id)
    return created


def _free(now: datetime) -> ColumnElement[bool]:
    return or_(batches.c.held_until.is_(None), batches.c.held_until < now)


def take(
    session: Session, states: Sequence[str], *, now: datetime, hold_s: float, polling: bool
) -> list[BatchRow]:
    """Hold batches in `states` that nobody holds (and, when `polling`, are due a poll)."""
    query = select(batches.c.id, batches.c.state).where(
        batches.c.state.in_(list(states)), _free(now)
    )
    if polling:
        query = query.where(or_(batches.c.next_poll_at.is_(None), batches.c.next_poll_at <= now))
    found = session.execute(query.order_by(batches.c.created_at).limit(100)).all()
    held = []
    for row in found:
        moved = session.execute(
            update(batches)
            .where(batches.c.id == row.id, batches.c.state == row.state, _free(now))
            .values(held_until=now + timedelta(seconds=hold_s), updated_at=now)
            .returning(
                batches.c.id,
                batches.c.provider,
                batches.c.model,
                batches.c.state,
                batches.c.remote_id,
                batches.c.deadline,
                batches.c.polls,
            )
        ).first()
        if moved is not None:
            held.append(BatchRow(*moved))
    return held


def set_state(
    session: Session, batch_id: str, *, now: datetime, from_state: str, **values: object
) -> bool:
    """Move a batch on (guarded by its current state); False if it was not in `from_state`."""
    moved: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(batches)
        .where(batches.c.id == batch_id, batches.c.state == from_state)
        .values(updated_at=now, **values)
    )
    return moved.rowcount == 1


def requests_of(session: Session, batch_id: str) -> list[tuple[str, str]]:
    """(job id, request JSON) of a batch's members, in a stable order."""
    rows = session.execute(
        select(members.c.job_id, members.c.request)
        .where(members.c.batch_id == batch_id)
        .order_by(members.c.job_id)
    ).all()
    return [(r.job_id, r.request) for r in rows]


def leave(session: Session, job_ids: Sequence[str]) -> None:
    """Jobs done with provider batches (settled, failed, or back on the standard path)."""
    if job_ids:
        session.execute(delete(members).where(members.c.job_id.in_(list(job_ids))))


def unbatch(session: Session, job_ids: Sequence[str]) -> None:
    """Members of an expired batch that wait for the next one (`AGENTQUEUE_BATCH_ON_EXPIRY`)."""
    if job_ids:
        session.execute(
            update(members).where(members.c.job_id.in_(list(job_ids))).values(batch_id=None)
        )
