"""Send again, from SQL, the jobs whose worker died or whose message vanished."""

from __future__ import annotations

from celery import Celery

from agentqueue.jobs import utcnow
from agentqueue.messaging import Dispatcher, JobRef, queue_for
from agentqueue.scheduler.redelivery import redeliver_lost
from agentqueue.workers.context import WorkerContext


def send_lost_jobs(context: WorkerContext, celery_app: Celery) -> list[JobRef]:
    """One sweep (the lease keeper's thread, or beat's `redeliver_stale_jobs`)."""
    settings = context.settings
    dispatcher = Dispatcher(celery_app, packed_batch_size=settings.packed_batch_size)
    return redeliver_lost(
        context.sessions,
        lambda jobs: dispatcher.send(jobs, packed=False),
        lambda priority: context.redis.llen(queue_for(priority)) == 0,
        now=utcnow(),
        lease_s=settings.job_lease_s,
    )
