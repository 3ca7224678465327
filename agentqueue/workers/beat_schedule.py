"""Every periodic task and its cadence, declared in one place (cadences from settings)."""

from __future__ import annotations

from typing import Any

from agentqueue.constants import (
    TASK_BUDGET_ALERTS,
    TASK_POLL_PROVIDER_BATCHES,
    TASK_PURGE_EXPIRED_CACHE,
    TASK_REDELIVER_STALE_JOBS,
    TASK_RELEASE_DEFERRED,
    TASK_SUBMIT_PROVIDER_BATCHES,
    TASK_SWEEP_STALE_RESERVATIONS,
)
from agentqueue.settings import Settings

# Beat tasks go to the critical queue: they are small, and they must not wait behind jobs.
_BEAT_QUEUE = {"queue": "agentqueue.critical"}


def _every(task: str, seconds: float) -> dict[str, Any]:
    return {"task": task, "schedule": seconds, "options": _BEAT_QUEUE}


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The schedule; `AGENTQUEUE_BEAT_*_S` make it run in seconds for tests and demos."""
    maintenance = settings.beat_maintenance_s
    return {
        "release-deferred": _every(TASK_RELEASE_DEFERRED, settings.beat_release_s),
        "submit-provider-batches": _every(TASK_SUBMIT_PROVIDER_BATCHES, settings.beat_batches_s),
        "poll-provider-batches": _every(TASK_POLL_PROVIDER_BATCHES, settings.beat_batches_s),
        "sweep-stale-reservations": _every(TASK_SWEEP_STALE_RESERVATIONS, maintenance),
        "redeliver-stale-jobs": _every(TASK_REDELIVER_STALE_JOBS, maintenance),
        "budget-alerts": _every(TASK_BUDGET_ALERTS, maintenance),
        "purge-expired-cache": _every(TASK_PURGE_EXPIRED_CACHE, maintenance * 10),
    }
