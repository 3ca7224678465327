"""Find jobs whose message was lost and send them again; SQL, not Redis, knows what is owed.

Redis can lose a message that a worker popped but had not yet recorded as unacked when it
died. A job still `running` past the visibility timeout has no live worker; a job `queued`
that long while its queue is empty has no message left. Sending one again is safe: every
step is idempotent by job id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from agentqueue.messaging import JobRef
from agentqueue.persistence import jobs_repository


def redeliver_stale(
    sessions: sessionmaker[Session],
    publish: Callable[[Sequence[JobRef]], object],
    queue_is_empty: Callable[[str], bool],
    *,
    now: datetime,
    visibility_timeout_s: int,
    limit: int = 500,
) -> list[JobRef]:
    """Publish the jobs that are owed a message; returns them."""
    with sessions() as session:
        stale = jobs_repository.stale_unfinished(
            session, before=now - timedelta(seconds=visibility_timeout_s), limit=limit
        )
    empty: dict[str, bool] = {}
    owed = []
    for job, running in stale:
        # A queued job behind a backlog is merely waiting; only an empty queue proves it lost.
        if not running and empty.setdefault(job.priority, queue_is_empty(job.priority)) is False:
            continue
        owed.append(job)
    if owed:
        publish(owed)
    return owed
