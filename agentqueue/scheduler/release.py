"""Release due deferred jobs from SQL onto the queues, each exactly once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from agentqueue.jobs import JobStatus
from agentqueue.messaging import JobRef
from agentqueue.persistence import jobs_repository

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[JobRef]], object]


def release_deferred(
    sessions: sessionmaker[Session],
    publish: Publish,
    *,
    now: datetime,
    limit: int,
    window_open: bool,
    deadline_only: bool = False,
    message_due: datetime | None = None,
) -> list[JobRef]:
    """Claim up to `limit` due jobs (highest priority, oldest first) and publish them.

    Inside an off-peak window every deferred job is due; outside, only those whose
    `release_after` has come (a nearing deadline). `deadline_only` releases just the jobs
    a deadline forces out (budget pressure holds the rest). If publishing fails, the
    claimed jobs go back to deferred, due now.
    """
    with sessions.begin() as session:
        released = jobs_repository.claim_due_deferred(
            session,
            due_by=None if window_open and not deadline_only else now,
            limit=limit,
            only_with_deadline=deadline_only,
            message_due=message_due,
        )
    if not released:
        return []
    try:
        publish(released)
    except Exception:
        with sessions.begin() as session:
            jobs_repository.set_status(
                session,
                [r.job_id for r in released],
                status=JobStatus.DEFERRED,
                from_statuses=[JobStatus.QUEUED.value],
                release_after=now,
            )
        log.exception("could not publish %d released job(s); they stay deferred", len(released))
        raise
    log.info("released %d deferred job(s)", len(released))
    return released
