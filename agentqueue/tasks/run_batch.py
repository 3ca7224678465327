"""`agentqueue.run_batch`: a packed chunk of jobs sharing `(agent_type, model)`."""

from __future__ import annotations

import logging
from typing import Any

from agentqueue.budget.price_overrides import SERVICE_TIERS
from agentqueue.constants import TASK_RUN_BATCH
from agentqueue.tasks.run_job import retry_countdown
from agentqueue.workers.app import app
from agentqueue.workers.executor import BatchExecutor
from agentqueue.workers.runtime import current_context

log = logging.getLogger(__name__)


@app.task(
    name=TASK_RUN_BATCH,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=None,
)
def run_batch(
    self: Any,
    job_ids: object,
    agent_type: object = "",
    model: object = "",
    service_tier: object = "standard",
    released: object = False,
) -> None:
    if (
        not isinstance(job_ids, list)
        or not job_ids
        or not all(isinstance(i, str) and i for i in job_ids)
        or not isinstance(service_tier, str)
        or not isinstance(released, bool)
    ):
        log.error("run_batch got malformed arguments; message dropped")
        return
    if service_tier not in SERVICE_TIERS:
        # Refused before the claim: the jobs stay as they were (never left `running`).
        log.error(
            "unknown_service_tier: run_batch message (delivery tag %s) asks for service tier "
            "%.40r, not one of %s; message dropped, its %d job(s) left untouched",
            (self.request.properties or {}).get("delivery_tag", "none"),
            service_tier,
            ", ".join(SERVICE_TIERS),
            len(job_ids),
        )
        return
    # A redelivered chunk skips the jobs that already have a final record (claim ignores them).
    report = BatchExecutor(current_context()).run(
        job_ids, service_tier=service_tier, released=released
    )
    if report.waiting:  # budget room held by reservations: these jobs ask again shortly
        self.retry(
            args=[list(report.waiting), agent_type, model, service_tier, released],
            countdown=min(report.waiting.values()),
            throw=False,
        )
    if report.retry:
        hints = [getattr(e, "retry_after_s", None) or 0.0 for e in report.retry.values()]
        raise self.retry(
            args=[list(report.retry), agent_type, model, service_tier, released],
            countdown=retry_countdown(self.request.retries, max(hints)),
        )
