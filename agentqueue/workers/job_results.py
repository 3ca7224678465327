"""Build the `JobResult` of each way a job can end in the worker."""

from __future__ import annotations

from decimal import Decimal

from agentqueue.budget.gate import Admission
from agentqueue.cache.entry import CacheEntry
from agentqueue.errors import AgentQueueError
from agentqueue.jobs import ErrorInfo, JobResult, JobStatus, utcnow
from agentqueue.persistence.jobs_repository import ClaimedJob


def _base(item: ClaimedJob, admission: Admission | None, provider: str) -> dict[str, object]:
    job = item.job
    reservation = admission.reservation if admission else None
    return {
        "job_id": job.id,
        "agent_type": job.agent_type,
        "tenant": job.tenant,
        "priority": job.priority,
        "attempts": item.attempts,
        "submitted_at": item.submitted_at,
        "started_at": item.started_at,
        "finished_at": utcnow(),
        "provider": provider,
        "model": reservation.model if reservation else job.model,
        "model_reason": reservation.model_reason if reservation else None,
        "budget_action": reservation.budget_action if reservation else None,
    }


def answered(
    item: ClaimedJob,
    admission: Admission,
    entry: CacheEntry,
    *,
    provider: str,
    cost: Decimal,
    service_tier: str,
    cache_tier: str | None,
    tokens_saved: int = 0,
) -> JobResult:
    """A job that got its output, from the provider (`cache_tier` None) or from a cache."""
    return JobResult(
        **_base(item, admission, provider),
        status=JobStatus.SUCCEEDED,
        output=entry.output,
        usage=entry.usage,
        cost_usd=str(cost),
        cache_tier=cache_tier,
        service_tier=service_tier,
        context_tokens_saved=tokens_saved,
    )


def ended(
    item: ClaimedJob,
    admission: Admission | None,
    error: AgentQueueError,
    *,
    provider: str,
    status: JobStatus,
) -> JobResult:
    """A job that failed (provider) or was rejected (budget, price, requirements)."""
    return JobResult(
        **_base(item, admission, provider),
        status=status,
        error=ErrorInfo(code=error.code, message=error.message),
    )
