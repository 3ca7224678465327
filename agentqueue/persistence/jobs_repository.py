"""Reads and writes of the `jobs` table. Callers own the session and its transaction."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Table,
    Update,
    and_,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from agentqueue.jobs import AgentJob, JobResult, JobStatus
from agentqueue.messaging import JobRef
from agentqueue.persistence.job_table import JobRecord
from agentqueue.persistence.ledger_entries import ENTRIES, EntryState
from agentqueue.persistence.ledger_guard import joined
from agentqueue.persistence.one_of import one_of

jobs: Table = JobRecord.__table__  # type: ignore[assignment]
CANCELLABLE = (JobStatus.QUEUED.value, JobStatus.DEFERRED.value)


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    job: AgentJob
    attempts: int
    submitted_at: datetime
    started_at: datetime
    waiting_since: datetime | None = None  # set while the job waits for budget room
    # The state of the job's ledger entry when it was claimed (None: no entry yet), read by
    # the claim's own statement so that admission need not ask again (see `claim`).
    entry_state: EntryState | None = None


def _row_for(
    job: AgentJob, status: JobStatus, now: datetime, release_after: datetime | None = None
) -> dict[str, object]:
    return {
        "id": job.id,
        "agent_type": job.agent_type,
        "model": job.model,
        "tenant": job.tenant,
        "priority": job.priority.value,
        "status": status.value,
        "payload": job.to_json(),
        "attempts": 0,
        "submitted_at": now,
        "deadline": job.deadline,
        "release_after": release_after,
    }


def insert_new(
    session: Session,
    new_jobs: Sequence[AgentJob],
    *,
    status: JobStatus,
    now: datetime,
    release_after: dict[str, datetime] | None = None,
) -> set[str]:
    """Insert jobs whose id is not taken yet; return the ids actually inserted.

    Jobs named in `release_after` are stored as deferred until that moment.
    """
    if not new_jobs:
        return set()
    held = release_after or {}
    rows = [
        _row_for(job, JobStatus.DEFERRED, now, held[job.id])
        if job.id in held
        else _row_for(job, status, now)
        for job in new_jobs
    ]
    dialect = session.get_bind().dialect.name
    statement: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        statement = postgresql.insert(jobs).on_conflict_do_nothing(index_elements=["id"])
    elif dialect == "sqlite":
        statement = sqlite.insert(jobs).on_conflict_do_nothing(index_elements=["id"])
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"unsupported database {dialect}")
    inserted: set[str] = set()
    # RETURNING with executemany is supported on both backends ("insertmanyvalues").
    for row in session.execute(statement.returning(jobs.c.id), rows):
        inserted.add(row.id)
    return inserted


def payloads(session: Session, ids: Iterable[str]) -> dict[str, str]:
    rows = session.execute(select(jobs.c.id, jobs.c.payload).where(jobs.c.id.in_(list(ids))))
    return {row.id: row.payload for row in rows}


def delete_jobs(session: Session, ids: Sequence[str]) -> None:
    session.execute(delete(jobs).where(jobs.c.id.in_(list(ids))))


def claim(
    session: Session,
    ids: Sequence[str],
    *,
    now: datetime,
    owner: str = "",
    lease_until: datetime | None = None,
    own: Sequence[str] = (),
    ledger_writer: bool = False,
) -> list[ClaimedJob]:
    """Mark queued jobs (or running ones whose lease ran out) as running under `owner`'s lease
    until `lease_until`; each claimed job comes back with its ledger entry's state. A job
    under a live lease, or final, is left alone: only one worker holds a job at a time (the
    UPDATE rechecks its condition on the locked row). `own` names jobs `owner` may take back
    under its own live lease: ones it no longer runs (a retry whose requeue could not be
    written). `ledger_writer`: the transaction goes on to write ledger entries, and this
    statement joins the ledger writers for it (see `ledger_guard`)."""
    if not ids:
        return []
    params: dict[str, object] = {
        "claim_ids": list(ids),
        "claim_now": now,
        "claim_owner": owner or None,
        "claim_until": lease_until,
    }
    statement = _CLAIM
    if owner and own:
        statement, params["claim_own"] = _CLAIM_OWN, list(own)
    claimed = []
    rows = (
        joined(session, statement, params) if ledger_writer else session.execute(statement, params)
    )
    for row in rows:
        claimed.append(
            ClaimedJob(
                job=AgentJob.model_validate_json(row.payload),
                attempts=row.attempts,
                submitted_at=row.submitted_at,
                started_at=now,
                waiting_since=row.waiting_since,
                entry_state=None if row.entry_state is None else EntryState(row.entry_state),
            )
        )
    return claimed


# The claimed job's ledger entry state. A claim that waited for a concurrent transaction's
# lock on the job row reads it from the statement's snapshot, which may miss an entry that
# transaction wrote; but then that transaction claimed the job (or finished it), so this one
# does not claim it. A duplicate entry would still fail on the primary key and the whole
# transaction be rerun.
_ENTRY_STATE = select(ENTRIES.c.state).where(ENTRIES.c.job_id == jobs.c.id).scalar_subquery()


def _claimable(now: ColumnElement[datetime]) -> ColumnElement[bool]:
    """Queued, or running under a lease that ran out (its worker is gone)."""
    return or_(
        jobs.c.status == JobStatus.QUEUED.value,
        and_(
            jobs.c.status == JobStatus.RUNNING.value,
            or_(jobs.c.lease_expires_at.is_(None), jobs.c.lease_expires_at < now),
        ),
    )


# The claim's parameters used in more than one place of its statements.
_CLAIM_NOW = bindparam("claim_now", type_=jobs.c.lease_expires_at.type)
_CLAIM_OWNER = bindparam("claim_owner", type_=jobs.c.lease_owner.type)


def _claim_statement(condition: ColumnElement[bool]) -> Update:
    return (
        update(jobs)
        .where(one_of(jobs.c.id, "claim_ids"), condition)
        .values(
            status=JobStatus.RUNNING.value,
            attempts=jobs.c.attempts + 1,
            started_at=_CLAIM_NOW,
            lease_owner=_CLAIM_OWNER,
            lease_expires_at=bindparam("claim_until"),
        )
        .returning(
            jobs.c.payload,
            jobs.c.attempts,
            jobs.c.submitted_at,
            jobs.c.waiting_since,
            _ENTRY_STATE.label("entry_state"),
        )
    )


# Built once: a claim runs per group, and building the statement cost more CPU than its
# execution (the compiled form is cached by SQLAlchemy either way).
_CLAIM = _claim_statement(_claimable(_CLAIM_NOW))
_CLAIM_OWN = _claim_statement(
    or_(
        _claimable(_CLAIM_NOW),
        and_(
            jobs.c.status == JobStatus.RUNNING.value,
            jobs.c.lease_owner == _CLAIM_OWNER,
            one_of(jobs.c.id, "claim_own"),
        ),
    )
)


def requeue(session: Session, ids: Sequence[str], *, message_due: datetime | None = None) -> None:
    """Put running jobs back to queued (a retry is on its way, due by `message_due`); any
    budget wait is over."""
    session.execute(
        update(jobs)
        .where(jobs.c.id.in_(list(ids)), jobs.c.status == JobStatus.RUNNING.value)
        .values(
            status=JobStatus.QUEUED.value,
            lease_owner=None,
            lease_expires_at=message_due,
            waiting_since=None,
            waiting_for=None,
        )
    )


def wait_for_budget(
    session: Session,
    waits: Mapping[str, str],
    *,
    now: datetime,
    message_due: datetime | None = None,
) -> None:
    """Put running jobs back to queued to wait for budget room on `waits[id]` (a
    "<period>:<scope>" label); the wait keeps its first start, and is not an attempt. Their
    messages (retries) are due by `message_due`."""
    if not waits:
        return
    session.connection().execute(
        _WAIT,
        [
            {"b_id": job_id, "b_for": label, "b_now": now, "b_due": message_due}
            for job_id, label in waits.items()
        ],
    )


_WAIT = (
    update(jobs)
    .where(jobs.c.id == bindparam("b_id"), jobs.c.status == JobStatus.RUNNING.value)
    .values(
        status=JobStatus.QUEUED.value,
        attempts=jobs.c.attempts - 1,
        waiting_since=func.coalesce(
            jobs.c.waiting_since, bindparam("b_now", type_=jobs.c.waiting_since.type)
        ),
        waiting_for=bindparam("b_for"),
        lease_owner=None,
        lease_expires_at=bindparam("b_due", type_=jobs.c.lease_expires_at.type),
    )
)


def budget_waiters(session: Session, *, since: datetime) -> list[tuple[str, str]]:
    """(priority, "<period>:<scope>") of the jobs waiting for budget room since `since`."""
    rows = session.execute(
        select(jobs.c.priority, jobs.c.waiting_for)
        .where(jobs.c.waiting_since >= since, jobs.c.status == JobStatus.QUEUED.value)
        .distinct()
    )
    return [(row.priority, row.waiting_for) for row in rows if row.waiting_for]


def finish(session: Session, results: Sequence[JobResult]) -> set[str]:
    """Write final records for running jobs; return the ids that got one (each exactly once)."""
    if not results:
        return set()
    rows = [
        {
            "b_id": r.job_id,
            "b_status": r.status.value,
            "b_result": r.model_dump_json(exclude_none=True),
            "b_error_code": r.error.code if r.error else None,
            "b_finished_at": r.finished_at,
        }
        for r in results
    ]
    if len(rows) > 1:
        return _finish_group(session, rows)
    found = session.execute(_FINISH_ONE, rows[0]).first()
    return set() if found is None else {found.id}


def _finish_group(session: Session, rows: Sequence[Mapping[str, object]]) -> set[str]:
    """Lock the group's running rows, then one executemany: two cached statements, two
    round trips, whatever the group's size."""
    running = set(session.scalars(_LOCK_RUNNING, {"finish_ids": [r["b_id"] for r in rows]}))
    if running:
        session.connection().execute(_FINISH, [r for r in rows if r["b_id"] in running])
    return running


_LOCK_RUNNING = (
    select(jobs.c.id)
    .where(
        one_of(jobs.c.id, "finish_ids"),
        jobs.c.status == JobStatus.RUNNING.value,
    )
    .with_for_update()
)
_FINISH = (
    update(jobs)
    .where(jobs.c.id == bindparam("b_id"), jobs.c.status == JobStatus.RUNNING.value)
    .values(
        status=bindparam("b_status"),
        result=bindparam("b_result"),
        error_code=bindparam("b_error_code"),
        finished_at=bindparam("b_finished_at"),
    )
)
# A lone job: the same statement, telling in one round trip whether it wrote the record.
_FINISH_ONE = _FINISH.returning(jobs.c.id)


def set_status(
    session: Session,
    ids: Sequence[str],
    *,
    status: JobStatus,
    from_statuses: Sequence[str],
    release_after: datetime | None = None,
    result: JobResult | None = None,
) -> set[str]:
    """Move jobs between non-running states (cancel, defer, release); return the ids moved."""
    values: dict[str, object] = {"status": status.value, "release_after": release_after}
    if result is not None:
        values["result"] = result.model_dump_json(exclude_none=True)
        values["finished_at"] = result.finished_at
        values["error_code"] = result.error.code if result.error else None
    statement = (
        update(jobs)
        .where(jobs.c.id.in_(list(ids)), jobs.c.status.in_(list(from_statuses)))
        .values(**values)
        .returning(jobs.c.id)
    )
    return {row.id for row in session.execute(statement)}


def count_by_status(session: Session) -> dict[str, int]:
    """How many jobs are in each status."""
    statement = select(jobs.c.status, func.count()).group_by(jobs.c.status)
    return {status: int(count) for status, count in session.execute(statement)}


def statuses(session: Session, ids: Sequence[str]) -> dict[str, str]:
    """Job id -> status of those of `ids` that exist."""
    statement = select(jobs.c.id, jobs.c.status).where(jobs.c.id.in_(list(ids)))
    return {row.id: row.status for row in session.execute(statement)}


def get_record(session: Session, job_id: str) -> JobRecord | None:
    return session.get(JobRecord, job_id)


def get_records(session: Session, ids: Sequence[str]) -> list[JobRecord]:
    return list(session.scalars(select(JobRecord).where(JobRecord.id.in_(list(ids)))))


def record_to_result(record: JobRecord) -> JobResult:
    """The application's view of a row: its stored final result, or its current state."""
    if record.result:
        result = JobResult.model_validate_json(record.result)
        return result.model_copy(update={"attempts": record.attempts})
    job = json.loads(record.payload)
    return JobResult(
        job_id=record.id,
        status=JobStatus(record.status),
        agent_type=record.agent_type,
        tenant=record.tenant,
        priority=job.get("priority"),
        model=record.model,
        attempts=record.attempts,
        release_after=record.release_after,
        submitted_at=record.submitted_at,
        started_at=record.started_at,
    )


PRIORITY_RANK = {"critical": 0, "high": 1, "normal": 2, "low": 3}


def claim_due_deferred(
    session: Session,
    *,
    due_by: datetime | None,
    limit: int,
    only_with_deadline: bool = False,
    message_due: datetime | None = None,
) -> list[JobRef]:
    """Move deferred jobs to queued, highest priority and oldest first, atomically.

    `due_by=None` takes every deferred job (the off-peak window is open); otherwise only
    those whose `release_after` has come. `message_due`: by when their messages should have
    been claimed (after that the sweepers send them again). Two callers at once never get
    the same job: PostgreSQL skips rows another transaction has locked; SQLite serialises
    writers.
    """
    rank = case(PRIORITY_RANK, value=jobs.c.priority, else_=9)
    due = (
        select(jobs.c.id)
        .where(jobs.c.status == JobStatus.DEFERRED.value)
        .order_by(rank, jobs.c.submitted_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if due_by is not None:
        due = due.where(jobs.c.release_after <= due_by)
    if only_with_deadline:
        due = due.where(jobs.c.deadline.is_not(None))
    ids = list(session.scalars(due))
    if not ids:
        return []
    rows = session.execute(
        update(jobs)
        .where(jobs.c.id.in_(ids), jobs.c.status == JobStatus.DEFERRED.value)
        .values(status=JobStatus.QUEUED.value, lease_owner=None, lease_expires_at=message_due)
        .returning(jobs.c.id, jobs.c.agent_type, jobs.c.model, jobs.c.priority)
    ).all()
    order = {job_id: position for position, job_id in enumerate(ids)}
    released = [JobRef(r.id, r.agent_type, r.model, r.priority) for r in rows]
    released.sort(key=lambda r: order[r.job_id])
    return released


def defer_running(session: Session, release_after: dict[str, datetime]) -> set[str]:
    """A claimed job the budget ladder holds back: deferred again until `release_after`."""
    moved: set[str] = set()
    for job_id, when in release_after.items():
        row = session.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status == JobStatus.RUNNING.value)
            .values(
                status=JobStatus.DEFERRED.value,
                release_after=when,
                lease_owner=None,
                lease_expires_at=None,
                waiting_since=None,
                waiting_for=None,
            )
            .returning(jobs.c.id)
        ).first()
        if row is not None:
            moved.add(row.id)
    return moved
