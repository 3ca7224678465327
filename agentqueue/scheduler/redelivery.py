"""Send again the jobs whose message is gone; SQL, not Redis, knows what is owed.

A running job whose lease ran out has no live worker (it died: SIGKILL, OOM, a lost host).
A queued job whose message is overdue while its queue is empty has no message left (Redis
lost it in a restart, or a dead worker had prefetched it). Both are sent again, each by one
sweeper (row locks), and each message is claimed by one worker at most: sending again is
safe because every step is idempotent by job id and a claim needs an expired lease.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from agentqueue.constants import PRIORITIES
from agentqueue.messaging import JobRef
from agentqueue.persistence import leases

log = logging.getLogger(__name__)


def redeliver_lost(
    sessions: sessionmaker[Session],
    publish: Callable[[Sequence[JobRef]], object],
    queue_is_empty: Callable[[str], bool],
    *,
    now: datetime,
    lease_s: int,
    limit: int = 500,
) -> list[JobRef]:
    """Publish the jobs that are owed a message; returns them.

    Raises whatever `publish` or `queue_is_empty` raise (Redis down): the jobs taken stay
    queued with a new due time and are sent by a later sweep.
    """
    due = now + timedelta(seconds=lease_s)
    with sessions.begin() as session:
        owed = leases.take_expired(session, now=now, lease_s=lease_s, message_due=due, limit=limit)
    if owed:
        log.warning("%d job(s) lost their worker (lease expired); sending them again", len(owed))
        publish(owed)
    # A queued job behind a backlog is merely waiting; only an empty queue proves it lost.
    empty = [priority for priority in PRIORITIES if queue_is_empty(priority)]
    with sessions.begin() as session:
        lost = leases.take_unclaimed(
            session, priorities=empty, now=now, lease_s=lease_s, message_due=due, limit=limit
        )
    if lost:
        log.warning("%d queued job(s) had no message left; sending them again", len(lost))
        publish(lost)
    return owed + lost
