"""Every periodic task and its cadence, declared in one place."""

from __future__ import annotations

from typing import Any

from agentqueue.constants import (
    TASK_BUDGET_ALERTS,
    TASK_PURGE_EXPIRED_CACHE,
    TASK_REDELIVER_STALE_JOBS,
    TASK_RELEASE_DEFERRED,
    TASK_SWEEP_STALE_RESERVATIONS,
)

# Beat tasks go to the critical queue: they are small, and they must not wait behind jobs.
_BEAT_QUEUE = {"queue": "agentqueue.critical"}


def _every(task: str, seconds: float) -> dict[str, Any]:
    return {"task": task, "schedule": seconds, "options": _BEAT_QUEUE}


BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "release-deferred": _every(TASK_RELEASE_DEFERRED, 60.0),
    "sweep-stale-reservations": _every(TASK_SWEEP_STALE_RESERVATIONS, 60.0),
    "redeliver-stale-jobs": _every(TASK_REDELIVER_STALE_JOBS, 60.0),
    "budget-alerts": _every(TASK_BUDGET_ALERTS, 60.0),
    "purge-expired-cache": _every(TASK_PURGE_EXPIRED_CACHE, 600.0),
}
