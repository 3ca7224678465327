"""Which tier a job asks for, and the row that keeps its request until a provider batch
takes it (the executor's side of provider batches)."""

from __future__ import annotations

from datetime import datetime, timedelta

from agentqueue.budget.gate import Admission
from agentqueue.jobs import AgentJob, utcnow
from agentqueue.providers.batch_base import request_to_json
from agentqueue.workers.context import WorkerContext
from agentqueue.workers.provider_calls import PlannedCall, request_for

BATCH_TIER = "batch"


def wanted_tier(
    context: WorkerContext,
    job: AgentJob,
    service_tier: str,
    released: bool,
    window_open: bool,
    now: datetime,
) -> str:
    """Released work asks for the off-peak tier (a `low` job inside the window too); a
    provider batch only while the job's deadline leaves time for one to complete."""
    settings = context.settings
    wanted = service_tier
    if wanted == "standard" and not released and window_open and job.priority == "low":
        wanted = context.offpeak_tier
    if wanted == BATCH_TIER:
        if context.batch_api is None:
            return "flex"
        if job.deadline is not None:
            latest = job.deadline - timedelta(seconds=settings.expected_run_s_default)
            if latest < now + timedelta(seconds=settings.batch_expected_s):
                return "flex"
    return wanted


def batch_member(context: WorkerContext, job: AgentJob, admission: Admission) -> dict[str, object]:
    """The `provider_batch_jobs` row of an admitted job: its request, as it will be sent."""
    assert context.batch_api is not None
    reservation = admission.reservation
    request = request_to_json(
        request_for(
            PlannedCall(job, reservation.model, reservation.max_output_tokens, BATCH_TIER, None)
        )
    )
    expected = timedelta(seconds=context.settings.expected_run_s_default)
    return {
        "job_id": job.id,
        "batch_id": None,
        "provider": context.batch_api.name,
        "model": reservation.model,
        "request": request,
        "request_bytes": len(request.encode()),
        "priority": job.priority.value,
        # The latest moment it may still start: the batch is cancelled before it.
        "deadline": job.deadline - expected if job.deadline is not None else None,
        "created_at": utcnow(),
    }
