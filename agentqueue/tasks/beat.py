"""Periodic tasks run by beat; each is safe when two beats run by mistake."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

from agentqueue.constants import (
    BUDGET_UTILISATION_KEY,
    OFFPEAK_TIER,
    TASK_BUDGET_ALERTS,
    TASK_PURGE_EXPIRED_CACHE,
    TASK_REDELIVER_STALE_JOBS,
    TASK_RELEASE_DEFERRED,
    TASK_SWEEP_STALE_RESERVATIONS,
)
from agentqueue.jobs import utcnow
from agentqueue.messaging import Dispatcher, JobRef
from agentqueue.scheduler.release import release_deferred as release_due
from agentqueue.workers.app import app
from agentqueue.workers.lost_jobs import send_lost_jobs
from agentqueue.workers.runtime import current_context

log = logging.getLogger(__name__)

# Utilisation published for autoscalers outlives a few missed beats, not a dead beat.
UTILISATION_TTL_S = 300


@app.task(name=TASK_RELEASE_DEFERRED, ignore_result=True)
def release_deferred() -> int:
    """Release due deferred jobs as packed batches on the cheaper off-peak tier.

    Inside the window every deferred job is due; outside it, only those whose deadline
    nears. While the budget ladder says defer, only deadline-bound jobs go out.
    """
    context = current_context()
    settings = context.settings
    dispatcher = Dispatcher(app, packed_batch_size=settings.packed_batch_size)

    def publish(released: Sequence[JobRef]) -> None:
        dispatcher.send(
            released,
            packed=True,
            service_tier=OFFPEAK_TIER,
            released=True,
        )

    now = utcnow()
    pressure = context.gate.max_utilisation(now=now) >= Decimal(str(settings.budget_defer_at))
    released = release_due(
        context.sessions,
        publish,
        now=now,
        limit=settings.release_rate_per_minute,
        window_open=context.offpeak.is_off_peak(now),
        deadline_only=pressure,
        message_due=now + timedelta(seconds=settings.job_lease_s),
    )
    return len(released)


@app.task(name=TASK_REDELIVER_STALE_JOBS, ignore_result=True)
def redeliver_stale_jobs() -> int:
    """Send again the jobs whose worker died (lease expired) or whose message was lost.

    Every worker process sweeps on its own every third of the lease; this is the same sweep
    for deployments that want beat to do it too.
    """
    return len(send_lost_jobs(current_context(), app))


@app.task(name=TASK_SWEEP_STALE_RESERVATIONS, ignore_result=True)
def sweep_stale_reservations() -> int:
    """Release reservations of workers that died between reserve and settle."""
    swept = current_context().gate.sweep_stale_reservations()
    if swept:
        log.warning("released %d stale reservation(s)", swept)
    return swept


@app.task(name=TASK_BUDGET_ALERTS, ignore_result=True)
def budget_alerts() -> str:
    """Alert once per threshold crossing, and publish utilisation for the autoscalers."""
    context = current_context()
    context.gate.check_alerts()
    utilisation = context.gate.max_utilisation()
    context.redis.set(BUDGET_UTILISATION_KEY, str(utilisation), ex=UTILISATION_TTL_S)
    return str(utilisation)


@app.task(name=TASK_PURGE_EXPIRED_CACHE, ignore_result=True)
def purge_expired_cache() -> int:
    """Delete expired L3 cache rows and bodies nothing refers to any more."""
    result = current_context().cache.purge_expired()
    return int(result.entries)
