"""`agentqueue.run_job`: one job id per message."""

from __future__ import annotations

import logging
from typing import Any

from agentqueue.backoff import backoff_s
from agentqueue.constants import MAX_RETRY_COUNTDOWN_S, TASK_RUN_JOB
from agentqueue.errors import AgentQueueError
from agentqueue.workers.app import app
from agentqueue.workers.arrivals import is_urgent
from agentqueue.workers.runtime import current_aggregator

log = logging.getLogger(__name__)

RETRY_BASE_S = 0.5


class JobFailed(AgentQueueError):
    """Raised after a job's final `failed` record is written, so its task ends in FAILURE.

    It is in the task's `throws`: Celery logs it as an expected error (no traceback), acks the
    message (`task_acks_on_failure_or_timeout`) and never retries it.
    """

    code = "job_failed"


def retry_countdown(retries: int, hint: float | None) -> float:
    """Exponential backoff, at least the provider's Retry-After, capped."""
    delay = backoff_s(retries + 1, base_s=RETRY_BASE_S, max_s=MAX_RETRY_COUNTDOWN_S)
    return min(MAX_RETRY_COUNTDOWN_S, max(hint or 0.0, delay))


@app.task(
    name=TASK_RUN_JOB,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=None,
    throws=(JobFailed,),
)
def run_job(self: Any, job_id: object, agent_type: object = "", model: object = "") -> None:
    if not all(isinstance(v, str) for v in (job_id, agent_type, model)) or not job_id:
        log.error("run_job got malformed arguments; message dropped")
        return
    report = current_aggregator().submit(
        (str(agent_type), str(model)),
        str(job_id),
        urgent=is_urgent(self.request.delivery_info),
    )
    wait = report.waiting.get(str(job_id))
    if wait is not None:  # budget room held by reservations: ask again shortly (job is queued)
        raise self.retry(countdown=wait)
    error = report.retry.get(str(job_id))
    if error is not None:
        hint = getattr(error, "retry_after_s", None)
        raise self.retry(countdown=retry_countdown(self.request.retries, hint))
    failure = report.failed.get(str(job_id))
    if failure is not None:
        raise JobFailed(f"job {job_id} failed: {failure.message}", code=failure.code)
