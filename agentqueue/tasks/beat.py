"""Periodic tasks run by beat; each is safe when two beats run by mistake."""

from __future__ import annotations

from collections.abc import Sequence

from agentqueue.constants import TASK_RELEASE_DEFERRED
from agentqueue.jobs import utcnow
from agentqueue.persistence.jobs_repository import ReleasedJob
from agentqueue.scheduler.release import release_deferred as release_due
from agentqueue.scheduler.windows import OffPeakSchedule
from agentqueue.workers.app import app
from agentqueue.workers.context import current_context
from agentqueue.workers.dispatch import Dispatchable, Dispatcher

OFFPEAK_TIER = "flex"


@app.task(name=TASK_RELEASE_DEFERRED, ignore_result=True)
def release_deferred() -> int:
    """Release due deferred jobs as packed batches on the cheaper off-peak tier."""
    context = current_context()
    settings = context.settings
    dispatcher = Dispatcher(app, packed_batch_size=settings.packed_batch_size)

    def publish(released: Sequence[ReleasedJob]) -> None:
        dispatcher.send(
            [Dispatchable(r.job_id, r.agent_type, r.model, r.priority) for r in released],
            packed=True,
            service_tier=OFFPEAK_TIER,
        )

    now = utcnow()
    released = release_due(
        context.sessions,
        publish,
        now=now,
        limit=settings.release_rate_per_minute,
        window_open=OffPeakSchedule.from_settings(settings).is_off_peak(now),
    )
    return len(released)
