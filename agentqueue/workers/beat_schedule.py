"""Every periodic task and its cadence, declared in one place."""

from __future__ import annotations

from typing import Any

from agentqueue.constants import TASK_RELEASE_DEFERRED

# Beat tasks go to the critical queue: they are small, and they must not wait behind jobs.
_BEAT_QUEUE = {"queue": "agentqueue.critical"}

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "release-deferred": {
        "task": TASK_RELEASE_DEFERRED,
        "schedule": 60.0,
        "options": _BEAT_QUEUE,
    },
}
