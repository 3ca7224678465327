"""Run a group of jobs: claim, call the provider concurrently, record each final result once."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.exc import DBAPIError, OperationalError

from agentqueue.errors import AgentQueueError
from agentqueue.jobs import AgentJob, ErrorInfo, JobResult, JobStatus, Usage, utcnow
from agentqueue.persistence import jobs_repository
from agentqueue.persistence.jobs_repository import ClaimedJob
from agentqueue.providers import ProviderError, ProviderRequest, ProviderResponse
from agentqueue.workers.context import WorkerContext

log = logging.getLogger(__name__)


class DatabaseUnavailable(AgentQueueError):
    code = "database_unavailable"


@dataclass
class ExecutionReport:
    """What happened to each job id handed to the executor."""

    finished: list[JobResult] = field(default_factory=list)
    retry: dict[str, AgentQueueError] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def provider_request(
    job: AgentJob, *, model: str, default_max_tokens: int, service_tier: str = "standard"
) -> ProviderRequest:
    return ProviderRequest(
        model=model,
        messages=[m.model_dump(exclude_none=True) for m in job.messages],
        max_tokens=job.params.max_tokens or default_max_tokens,
        temperature=job.params.temperature,
        top_p=job.params.top_p,
        stop=job.params.stop,
        seed=job.params.seed,
        service_tier=service_tier,
        request_id=job.id,
    )


class BatchExecutor:
    """Processes jobs that share `(agent_type, model)` together, paying fixed costs once."""

    def __init__(self, context: WorkerContext) -> None:
        self.context = context
        self.settings = context.settings

    def run(self, job_ids: Sequence[str], *, service_tier: str = "standard") -> ExecutionReport:
        report = ExecutionReport()
        try:
            claimed = self._claim(job_ids)
        except DatabaseUnavailable as exc:
            report.retry = {job_id: exc for job_id in job_ids}
            return report
        claimed_ids = {c.job.id for c in claimed}
        report.skipped = [job_id for job_id in job_ids if job_id not in claimed_ids]
        if report.skipped:
            self._republish_final(report.skipped)
        if not claimed:
            return report

        outcomes = self._call_provider(claimed, service_tier)
        results: list[JobResult] = []
        for item in claimed:
            outcome = outcomes[item.job.id]
            if isinstance(outcome, ProviderError):
                if outcome.retryable and item.attempts <= self.settings.job_max_retries:
                    report.retry[item.job.id] = outcome
                    continue
                results.append(self._failed(item, outcome))
            else:
                results.append(self._succeeded(item, outcome))
        try:
            self._record(results, list(report.retry))
        except DatabaseUnavailable as exc:
            # Nothing final was written: run again later rather than lose the record.
            for result in results:
                report.retry[result.job_id] = exc
            return report
        report.finished = results
        return report

    def _claim(self, job_ids: Sequence[str]) -> list[ClaimedJob]:
        try:
            with self.context.sessions.begin() as session:
                return jobs_repository.claim(session, job_ids, now=utcnow())
        except (OperationalError, DBAPIError) as exc:
            log.warning(
                "database unavailable while claiming %d job(s): %s",
                len(job_ids),
                type(exc).__name__,
            )
            raise DatabaseUnavailable("the jobs database cannot be reached; retrying") from None

    def _call_provider(
        self, claimed: Sequence[ClaimedJob], service_tier: str
    ) -> dict[str, ProviderResponse | ProviderError]:
        def call(item: ClaimedJob) -> ProviderResponse | ProviderError:
            request = provider_request(
                item.job,
                model=item.job.model,
                default_max_tokens=self.settings.default_max_tokens,
                service_tier=service_tier,
            )
            try:
                return self.context.provider.complete(request)
            except ProviderError as exc:
                return exc
            except Exception as exc:  # a provider bug must fail one job, not the batch
                log.exception("provider raised unexpectedly for job %s", item.job.id)
                return ProviderError(f"provider failed: {type(exc).__name__}", retryable=False)

        if len(claimed) == 1:
            return {claimed[0].job.id: call(claimed[0])}
        futures = {item.job.id: self.context.calls.submit(call, item) for item in claimed}
        return {job_id: future.result() for job_id, future in futures.items()}

    def _record(self, results: list[JobResult], retry_ids: list[str]) -> None:
        try:
            with self.context.sessions.begin() as session:
                written = jobs_repository.finish(session, results)
                if retry_ids:
                    jobs_repository.requeue(session, retry_ids)
        except (OperationalError, DBAPIError) as exc:
            log.warning("database unavailable while recording results: %s", type(exc).__name__)
            raise DatabaseUnavailable("the jobs database cannot be reached; retrying") from None
        self.context.results.publish([r for r in results if r.job_id in written])

    def _republish_final(self, job_ids: Sequence[str]) -> None:
        """A redelivered message for a finished job: make sure its waiter can see the result."""
        try:
            with self.context.sessions() as session:
                records = jobs_repository.get_records(session, job_ids)
        except (OperationalError, DBAPIError):
            return
        final = [jobs_repository.record_to_result(r) for r in records]
        self.context.results.publish([r for r in final if r.is_final])

    def _base(self, item: ClaimedJob) -> dict[str, object]:
        job = item.job
        return {
            "job_id": job.id,
            "agent_type": job.agent_type,
            "tenant": job.tenant,
            "priority": job.priority,
            "attempts": item.attempts,
            "submitted_at": item.submitted_at,
            "started_at": item.started_at,
            "finished_at": utcnow(),
            "provider": self.context.provider.name,
        }

    def _succeeded(self, item: ClaimedJob, response: ProviderResponse) -> JobResult:
        return JobResult(
            **self._base(item),
            status=JobStatus.SUCCEEDED,
            output=response.output,
            model=response.model,
            usage=Usage(
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens,
            ),
            cost_usd=str(Decimal(0)),
            service_tier=response.service_tier,
        )

    def _failed(self, item: ClaimedJob, error: AgentQueueError) -> JobResult:
        return JobResult(
            **self._base(item),
            status=JobStatus.FAILED,
            model=item.job.model,
            error=ErrorInfo(code=error.code, message=error.message),
        )
