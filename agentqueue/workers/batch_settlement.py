"""Settle an ended provider batch: answers charged at the batch price through the same ledger
path as every job, failed lines by each job's retry policy, unfinished ones back to the
standard path (or the next batch); one transaction for the ledger and the jobs' records."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from agentqueue.budget.admission import admission_from_entry
from agentqueue.cache.entry import CacheEntry
from agentqueue.jobs import AgentJob, JobResult, JobStatus, utcnow
from agentqueue.metrics.job_metrics import FinishedJob
from agentqueue.persistence import batch_repository as repo
from agentqueue.persistence import jobs_repository
from agentqueue.persistence.jobs_repository import ClaimedJob, JobRef
from agentqueue.persistence.ledger_entries import read_entries
from agentqueue.persistence.transactions import in_transaction
from agentqueue.providers.base import ProviderError
from agentqueue.providers.batch_base import BatchItem, BatchPoll, LineResult
from agentqueue.usage import TokenUsage
from agentqueue.workers.context import WorkerContext
from agentqueue.workers.job_results import answered, ended
from agentqueue.workers.provider_calls import entry_for

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[JobRef]], object]


@dataclass
class _Outcome:
    """How the members of one ended batch end up."""

    usages: dict[str, TokenUsage] = field(default_factory=dict)
    answers: dict[str, CacheEntry] = field(default_factory=dict)
    failed: dict[str, ProviderError] = field(default_factory=dict)
    again: list[str] = field(default_factory=list)  # back to the standard path
    rebatch: list[str] = field(default_factory=list)  # wait for the next batch


class BatchSettlement:
    """Turns a finished batch's results into final records, charges and standard-path runs."""

    def __init__(self, context: WorkerContext, provider: str, publish: Publish) -> None:
        self.context = context
        self.settings = context.settings
        self.provider = provider
        self.publish = publish

    def settle(
        self,
        batch: repo.BatchRow,
        state: str,
        job_ids: list[str],
        items: list[BatchItem],
        poll: BatchPoll,
    ) -> int:
        by_custom = {item.custom_id: job_id for item, job_id in zip(items, job_ids, strict=True)}
        with self.context.sessions() as session:
            records = {r.id: r for r in jobs_repository.get_records(session, job_ids)}
        outcome = _Outcome()
        for custom_id, job_id in by_custom.items():
            row = records.get(job_id)
            if row is None or row.status != JobStatus.BATCHED.value:
                continue  # finished before (a settle that crashed after its commit)
            self._sort(outcome, job_id, row.attempts, poll.results.get(custom_id))
        provider = self.provider

        def record(session: Session) -> list[JobResult]:
            moment = utcnow()
            costs = self.context.gate.settle_in(session, outcome.usages, now=moment)
            entries = read_entries(session, list(records), lock=False)
            finals: list[JobResult] = []
            for job_id, entry in entries.items():
                item = _claimed(records[job_id])
                admission = admission_from_entry(entry)
                if job_id in outcome.answers:
                    finals.append(
                        answered(
                            item,
                            admission,
                            outcome.answers[job_id],
                            provider=provider,
                            cost=costs[job_id],
                            service_tier=entry.service_tier,
                            cache_tier=None,
                        )
                    )
                elif job_id in outcome.failed:
                    finals.append(
                        ended(
                            item,
                            admission,
                            outcome.failed[job_id],
                            provider=provider,
                            status=JobStatus.FAILED,
                        )
                    )
            _move(session, [r.job_id for r in finals], JobStatus.RUNNING)
            jobs_repository.finish(session, finals)
            # Back to the standard path: a fresh reservation at the standard price on re-run.
            released = list(outcome.failed) + outcome.again
            self.context.gate.ledger.release_in(session, job_ids=released, now=moment)
            _move(session, outcome.again, JobStatus.QUEUED)
            repo.leave(session, [r.job_id for r in finals] + outcome.again)
            repo.unbatch(session, outcome.rebatch)
            repo.set_state(
                session,
                batch.id,
                now=moment,
                from_state=state,
                state=repo.SETTLED,
                remote_status=poll.status,
                held_until=None,
            )
            return finals

        # Charges, final records and the batch's own state: one transaction (rerun whole).
        finals = in_transaction(self.context.sessions, record)
        self.context.results.publish(finals)
        self.context.metrics.group_finished(
            [FinishedJob(_claimed(records[r.job_id]).job, r) for r in finals],
            [],
            size=len(finals),
        )
        if outcome.again:
            refs = [
                JobRef(r.id, r.agent_type, r.model, r.priority)
                for r in records.values()
                if r.id in outcome.again
            ]
            self.publish(refs)
        log.info(
            "provider batch %s ended %s: %d answered, %d failed, %d to the standard path, "
            "%d rebatched",
            batch.id,
            poll.status,
            len(outcome.answers),
            len(outcome.failed),
            len(outcome.again),
            len(outcome.rebatch),
        )
        return len(finals)

    def _sort(self, outcome: _Outcome, job_id: str, attempts: int, line: LineResult | None) -> None:
        if line is not None and line.response is not None:
            entry = entry_for(line.response, provider=self.provider)
            outcome.answers[job_id] = entry
            outcome.usages[job_id] = entry.usage
        elif line is not None and line.error is not None:
            # A failed line follows the job's retry policy, like a failed live call.
            if line.error.retryable and attempts <= self.settings.job_max_retries:
                outcome.again.append(job_id)
            else:
                outcome.failed[job_id] = line.error
        elif self.settings.batch_on_expiry == "batch":
            outcome.rebatch.append(job_id)
        else:
            outcome.again.append(job_id)


def _claimed(record: jobs_repository.JobRecord) -> ClaimedJob:
    return ClaimedJob(
        job=AgentJob.model_validate_json(record.payload),
        attempts=record.attempts,
        submitted_at=record.submitted_at,
        started_at=record.started_at or record.submitted_at,
    )


def _move(session: Session, job_ids: Sequence[str], status: JobStatus) -> None:
    """Batched jobs on: to `running` just before their final record, or back to `queued`
    (`started_at` cleared, so the redelivery sweep treats a lost message as never sent)."""
    if not job_ids:
        return
    extra: dict[str, object] = {"started_at": None} if status is JobStatus.QUEUED else {}
    session.execute(
        jobs_repository.update(jobs_repository.jobs)
        .where(
            jobs_repository.jobs.c.id.in_(list(job_ids)),
            jobs_repository.jobs.c.status == JobStatus.BATCHED.value,
        )
        .values(status=status.value, **extra)
    )
