"""Beat's side of provider batches: form them, submit each once, poll with backoff, settle.

Every batch row is written before its remote call and every step is guarded by the row's
state, so a beat task killed at any point leaves work that the next run finishes: a batch
`recorded` is submitted; one `submitting` whose holder died is first looked up remotely (by
our batch id in its metadata) and only then submitted; one `submitted` is polled. Results
settle through the same ledger path as every job (`BudgetGate.complete`), at the batch price.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from agentqueue.budget.admission import admission_from_entry
from agentqueue.budget.gate import Settlement
from agentqueue.budget.ledger_entries import read_entries
from agentqueue.cache.entry import CacheEntry
from agentqueue.constants import BATCH_LIMITS
from agentqueue.jobs import AgentJob, JobResult, JobStatus, utcnow
from agentqueue.persistence import batch_repository as repo
from agentqueue.persistence import jobs_repository
from agentqueue.persistence.jobs_repository import ClaimedJob, JobRef
from agentqueue.providers.base import ProviderError
from agentqueue.providers.batch_base import (
    BatchAPI,
    BatchItem,
    BatchPoll,
    LineResult,
    request_from_json,
)
from agentqueue.workers.context import WorkerContext
from agentqueue.workers.job_results import answered, ended

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[JobRef]], object]


@dataclass
class _Outcome:
    """How the members of one ended batch end up."""

    settlements: list[Settlement] = field(default_factory=list)
    answers: dict[str, CacheEntry] = field(default_factory=dict)
    failed: dict[str, ProviderError] = field(default_factory=dict)
    again: list[str] = field(default_factory=list)  # back to the standard path
    rebatch: list[str] = field(default_factory=list)  # wait for the next batch


class ProviderBatches:
    """Runs inside the beat tasks `submit_provider_batches` and `poll_provider_batches`."""

    def __init__(self, context: WorkerContext, api: BatchAPI, publish: Publish) -> None:
        self.context = context
        self.settings = context.settings
        self.api = api
        self.publish = publish

    # Submit ---------------------------------------------------------------------------------

    def submit_due(self) -> int:
        """Form batches of waiting jobs, then submit every batch not yet submitted."""
        now = utcnow()
        try:
            with self.context.sessions.begin() as session:
                repo.form_batches(session, now=now, limits=self._limits())
        except repo.BatchRace:
            log.info("another beat task is forming provider batches; skipped this run")
        with self.context.sessions.begin() as session:
            held = repo.take(
                session,
                [repo.RECORDED, repo.SUBMITTING],
                now=now,
                hold_s=self.settings.batch_hold_s,
                polling=False,
            )
        submitted = 0
        for batch in held:
            submitted += self._submit(batch)
        return submitted

    def _limits(self) -> dict[str, tuple[int, int]]:
        return {
            name: (
                min(most, self.settings.batch_max_requests),
                min(size, self.settings.batch_max_bytes),
            )
            for name, (most, size) in BATCH_LIMITS.items()
        }

    def _submit(self, batch: repo.BatchRow) -> int:
        now = utcnow()
        if batch.state == repo.RECORDED:
            # Said before the call: from here on, the batch may exist remotely.
            with self.context.sessions.begin() as session:
                repo.set_state(
                    session, batch.id, now=now, from_state=repo.RECORDED, state=repo.SUBMITTING
                )
        items = self._items(batch.id)
        try:
            remote_id = self.api.find(batch.id) if batch.state == repo.SUBMITTING else None
            if remote_id is None:
                remote_id = self.api.submit(batch.id, items)
        except ProviderError as error:
            log.warning("provider batch %s not submitted yet: %s", batch.id, error.message)
            with self.context.sessions.begin() as session:
                repo.set_state(
                    session, batch.id, now=now, from_state=repo.SUBMITTING, held_until=None
                )
            return 0
        with self.context.sessions.begin() as session:
            repo.set_state(
                session,
                batch.id,
                now=utcnow(),
                from_state=repo.SUBMITTING,
                state=repo.SUBMITTED,
                remote_id=remote_id,
                submitted_at=utcnow(),
                next_poll_at=utcnow() + timedelta(seconds=self.settings.batch_poll_s),
                held_until=None,
            )
        log.info("submitted provider batch %s (%s, %d jobs)", batch.id, remote_id, len(items))
        return len(items)

    def _items(self, batch_id: str) -> list[BatchItem]:
        with self.context.sessions() as session:
            rows = repo.requests_of(session, batch_id)
        # Index-based ids satisfy every provider's custom_id rules whatever the job ids look like.
        return [BatchItem(f"r{i}", request_from_json(text)) for i, (_, text) in enumerate(rows)]

    def _job_ids(self, batch_id: str) -> list[str]:
        with self.context.sessions() as session:
            return [job_id for job_id, _ in repo.requests_of(session, batch_id)]

    # Poll -----------------------------------------------------------------------------------

    def poll_due(self) -> int:
        """Poll every submitted batch that is due; settle those that ended. Returns jobs settled."""
        now = utcnow()
        with self.context.sessions.begin() as session:
            held = repo.take(
                session,
                [repo.SUBMITTED, repo.CANCELLING],
                now=now,
                hold_s=self.settings.batch_hold_s,
                polling=True,
            )
        done = 0
        for batch in held:
            done += self._poll(batch)
        return done

    def _poll(self, batch: repo.BatchRow) -> int:
        assert batch.remote_id is not None
        now = utcnow()
        job_ids = self._job_ids(batch.id)
        items = self._items(batch.id)
        state = batch.state
        try:
            margin = timedelta(seconds=self.settings.batch_deadline_margin_s)
            if (
                state == repo.SUBMITTED
                and batch.deadline is not None
                and now >= batch.deadline - margin
            ):
                # A member's deadline nears: stop the batch; what it did not finish runs now.
                self.api.cancel(batch.remote_id)
                with self.context.sessions.begin() as session:
                    repo.set_state(
                        session,
                        batch.id,
                        now=now,
                        from_state=repo.SUBMITTED,
                        state=repo.CANCELLING,
                        cancel_reason="deadline",
                    )
                state = repo.CANCELLING
                log.info("cancelled provider batch %s: a member's deadline nears", batch.id)
            poll = self.api.poll(batch.remote_id, items)
        except ProviderError as error:
            log.warning("provider batch %s not polled: %s", batch.id, error.message)
            self._poll_later(batch, state)
            return 0
        if not poll.ended:
            self._poll_later(batch, state, remote_status=poll.status)
            return 0
        return self._settle(batch, state, job_ids, items, poll)

    def _poll_later(
        self, batch: repo.BatchRow, state: str, remote_status: str | None = None
    ) -> None:
        # Backoff: a long batch is polled less and less often, up to AGENTQUEUE_BATCH_POLL_MAX_S.
        wait = min(
            self.settings.batch_poll_s * 2 ** min(batch.polls, 16), self.settings.batch_poll_max_s
        )
        values: dict[str, object] = {
            "held_until": None,
            "polls": batch.polls + 1,
            "next_poll_at": utcnow() + timedelta(seconds=wait),
        }
        if remote_status is not None:
            values["remote_status"] = remote_status
        with self.context.sessions.begin() as session:
            repo.set_state(session, batch.id, now=utcnow(), from_state=state, **values)

    # Settle ---------------------------------------------------------------------------------

    def _settle(
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
        provider = self.api.name

        def record(session: Session, costs: dict[str, Decimal]) -> list[JobResult]:
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
            moment = utcnow()
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

        finals = self.context.gate.complete(outcome.settlements, [], record)
        self.context.results.publish(finals)
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
            entry = CacheEntry.from_response(line.response, provider=self.api.name)
            outcome.answers[job_id] = entry
            usage = entry.usage
            outcome.settlements.append(
                Settlement(
                    job_id, usage.input_tokens, usage.output_tokens, usage.cached_input_tokens
                )
            )
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
