"""Run a group of jobs through the path every job takes, paying fixed costs once per group.

start: claim + admit (model, ladder, reservation) in ONE transaction -> cache lookup ->
provider calls behind single-flight -> settle + cache hits + final records (ONE transaction) ->
results to Redis and the cache tiers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from sqlalchemy.exc import DBAPIError, OperationalError

from agentqueue.budget.gate import Admission, AdmissionGroup, CacheHit
from agentqueue.cache.entry import CacheEntry
from agentqueue.cache.keys import is_cacheable
from agentqueue.cache.request import CacheRequest
from agentqueue.errors import AgentQueueError, DatabaseUnavailable
from agentqueue.jobs import JobResult, JobStatus, utcnow
from agentqueue.metrics.job_metrics import FinishedJob
from agentqueue.persistence import jobs_repository
from agentqueue.persistence.jobs_repository import ClaimedJob
from agentqueue.scheduler.deferral_policy import release_time_for
from agentqueue.usage import TokenUsage
from agentqueue.workers.batch_enlist import BATCH_TIER, batch_member, wanted_tier
from agentqueue.workers.call_guard import FallbackNeeded
from agentqueue.workers.context import WorkerContext
from agentqueue.workers.context_window import fit_to_context
from agentqueue.workers.fallback_step import fall_back
from agentqueue.workers.group_commit import Completion, Start
from agentqueue.workers.job_results import answered, ended
from agentqueue.workers.provider_calls import CallOutcome, PlannedCall, call_all
from agentqueue.workers.work import ExecutionReport, JobWork

log = logging.getLogger(__name__)

CALL_OUTCOME_UNKNOWN = AgentQueueError(
    "an earlier attempt may have called the provider and died before keeping the answer; "
    "this job does not allow a repeated call, so it was charged at its reservation and not "
    "run again",
    code="call_outcome_unknown",
)


class BatchExecutor:
    """Processes jobs that share `(agent_type, model)` together."""

    def __init__(
        self,
        context: WorkerContext,
        *,
        calls_phase: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> None:
        """`calls_phase` surrounds a group's provider calls (the aggregator uses it to let the
        next group of the key start while calls outlast its batch timeout)."""
        self.context = context
        self.settings = context.settings
        self.provider_name = context.provider.name
        self._calls_phase = calls_phase

    def run(
        self, job_ids: Sequence[str], *, service_tier: str = "standard", released: bool = False
    ) -> ExecutionReport:
        """`released` marks jobs coming back from deferral: they run, never defer again."""
        report = ExecutionReport()
        now = utcnow()
        try:
            work = self._start(job_ids, service_tier, released, now, report)
        except DatabaseUnavailable as error:
            report.retry = dict.fromkeys(job_ids, error)
            return report
        claimed_ids = {w.job_id for w in work}
        report.skipped = [job_id for job_id in job_ids if job_id not in claimed_ids]
        if report.skipped:
            self._republish_final(report.skipped)
        if not work:
            return report
        try:
            return self._run_admitted(work, service_tier, report)
        finally:  # final, requeued or lost: this process holds none of them any more
            self.context.leases.drop(claimed_ids)

    def _run_admitted(
        self, work: list[JobWork], service_tier: str, report: ExecutionReport
    ) -> ExecutionReport:
        held = report.deferred.keys() | report.waiting.keys()
        runnable = [w for w in work if w.result is None and w.job_id not in held]
        self._recover_paid(runnable)
        self._mark_possible_repeats(runnable)
        pending = [w for w in runnable if w.entry is None and w.result is None]
        self._look_up(pending)
        # Work that can wait for a provider batch is recorded for one instead of being called.
        batched = [
            w
            for w in pending
            if w.entry is None
            and w.service_tier == BATCH_TIER
            and not w.possible_repeat  # possibly paid already: settled as the live path says
            and self.context.batch_api is not None  # else (turned off since) it runs live
        ]
        with self._calls_phase():
            self._call([w for w in pending if w.entry is None and w not in batched], report)
        fall_back(self, work, service_tier, report)
        return self._complete(work, report, batched)

    # Steps ---------------------------------------------------------------------------------

    def _start(
        self,
        job_ids: Sequence[str],
        service_tier: str,
        released: bool,
        now: datetime,
        report: ExecutionReport,
    ) -> list[JobWork]:
        """Claim the jobs and admit the claimed ones in one transaction; their work, with each
        job's verdict applied."""
        offpeak = self.context.offpeak
        window_open = offpeak.is_off_peak(now)
        # Deferring to off-peak gains nothing once off-peak has come.
        defer_allowed = not released and not window_open
        planned: list[JobWork] = []

        def plan(claimed: list[ClaimedJob]) -> list[AdmissionGroup]:
            planned[:] = [JobWork(item) for item in claimed]  # afresh if the transaction reruns
            self._fit_context(planned)
            by_tier: dict[str, list[JobWork]] = {}
            for w in planned:
                job = w.item.job
                tier = wanted_tier(self.context, job, service_tier, released, window_open, now)
                by_tier.setdefault(tier, []).append(w)
            return [
                AdmissionGroup(
                    [w.item.job for w in share],
                    now,
                    tier,
                    defer_allowed,
                    {w.job_id: w.item.waiting_since for w in share if w.item.waiting_since},
                )
                for tier, share in by_tier.items()
            ]

        try:
            started = self.context.group_commit.start(Start(job_ids, plan))
        except (OperationalError, DBAPIError) as error:
            log.warning(
                "database unavailable while starting %d job(s): %s",
                len(job_ids),
                type(error).__name__,
            )
            raise DatabaseUnavailable("the jobs database cannot be reached; retrying") from None
        for w in planned:
            self.apply_admission(w, started.admissions[w.job_id], now, report)
        return planned

    def _fit_context(self, work: list[JobWork]) -> None:
        for w in work:
            fitted = fit_to_context(
                w.item.job,
                self.context.gate.catalog,
                default_max_tokens=self.settings.default_max_tokens,
                chars_per_token=self.settings.chars_per_token,
            )
            if fitted.tokens_saved:
                w.item = replace(w.item, job=fitted.job)
                w.tokens_saved = fitted.tokens_saved

    def apply_admission(
        self,
        w: JobWork,
        admission: Admission,
        now: datetime,
        report: ExecutionReport,
    ) -> None:
        """Record the gate's verdict on one job: a final result, a deferral, or a tier to run on."""
        offpeak = self.context.offpeak
        w.admission = admission
        if admission.already_settled:
            # Settlement and final record are written together, so this means a record
            # was lost by hand; calling the provider again would spend unrecorded money.
            w.result = ended(
                w.item,
                admission,
                AgentQueueError(
                    "the ledger already charged this job but holds no result for it; "
                    "it was not run again (submit it with a new id to rerun it)",
                    code="already_settled",
                ),
                provider=self.provider_name,
                status=JobStatus.FAILED,
            )
        elif admission.decision == "reject":
            assert admission.error is not None
            w.result = ended(
                w.item,
                admission,
                admission.error,
                provider=self.provider_name,
                status=JobStatus.REJECTED,
            )
        elif admission.decision == "wait":
            # Not running while it waits: back to queued (in `_complete`), asks again later.
            report.waiting[w.job_id] = admission.retry_after_s
        elif admission.decision == "defer":
            job = w.item.job
            report.deferred[w.job_id] = (
                release_time_for(
                    job.priority,
                    job.deadline,
                    self.settings.expected_run_s_default,
                    now,
                    offpeak.windows,
                    offpeak.tz,
                    budget_says_defer=True,
                )
                or now
            )
        else:
            # The gate priced the job on the tier it really runs on (a wanted tier without
            # a price of its own falls back), so result and ledger entry say the same.
            w.service_tier = admission.reservation.service_tier

    def _recover_paid(self, runnable: list[JobWork]) -> None:
        """Answers paid for on an earlier attempt that died or could not settle: journaled."""
        retried = [w.job_id for w in runnable if w.item.attempts > 1]
        if not retried:
            return
        kept = self.context.journal.take(retried)
        for w in runnable:
            answer = kept.get(w.job_id)
            if answer is not None:
                w.entry = answer.entry
                # Calls of unknown outcome the attempt that got it had made: charged still.
                w.carried_repeat = answer.carried_over
                if answer.possibly_repeated:
                    self._sent_in_transit(w, answer.possibly_repeated)

    def fallback_models(self, w: JobWork) -> list[str]:
        """Models `w` may still move to, in order (priced, served, not yet tried)."""
        if w.remaining is None:
            job = w.item.job
            if job.model != "auto" and not job.fallbacks:
                w.remaining = []
            else:
                chosen = w.admission.reservation.model if w.admission else job.model
                w.remaining = self.context.gate.planner.fallback_models(job, chosen)
        return [m for m in w.remaining if m not in w.tried]

    def look_up(self, runnable: list[JobWork]) -> None:
        self._look_up(runnable)

    def call(self, runnable: list[JobWork], report: ExecutionReport) -> None:
        self._call(runnable, report)

    def _mark_possible_repeats(self, runnable: list[JobWork]) -> None:
        """An earlier attempt reserved, kept no answer and never settled: its call may have
        been made and paid. The money is charged either way; the provider is called again
        only where the job accepts a repeat. Where the earlier attempts counted more such
        calls than the one (requests dropped in transit before a retry, see `_carry`), each
        of them is charged too."""
        carried = [
            w
            for w in runnable
            if w.entry is None and w.admission is not None and w.admission.carried_over
        ]
        counted = self.context.journal.carried([w.job_id for w in carried]) if carried else {}
        for w in carried:
            w.carried_repeat = True
            job = w.item.job
            log.warning("job %s: an earlier attempt's provider call may have been paid", job.id)
            more = counted.get(w.job_id, 1) - 1
            if more > 0:
                self._sent_in_transit(w, more)
            assert w.admission is not None
            if not self.settings.repeat_allowed(job.agent_type, job.repeatable):
                w.result = ended(
                    w.item,
                    w.admission,
                    CALL_OUTCOME_UNKNOWN,
                    provider=self.provider_name,
                    status=JobStatus.FAILED,
                )

    def _look_up(self, runnable: list[JobWork]) -> None:
        for w in runnable:
            assert w.admission is not None
            if not (self.settings.cache_enabled and is_cacheable(w.item.job)):
                continue  # neither read nor written: no key to compute
            w.cache = CacheRequest.for_job(
                w.item.job,
                provider=self.provider_name,
                model=w.admission.reservation.model,
                settings=self.settings,
            )
        readable = [w for w in runnable if w.cache is not None and w.cache.readable]
        if not readable:
            return
        lookups = self.context.cache.lookup_many([w.cache for w in readable if w.cache])
        for w, lookup in zip(readable, lookups, strict=True):
            if lookup.hit and lookup.entry is not None:
                w.entry, w.cache_tier = lookup.entry, lookup.tier

    def _call(self, runnable: list[JobWork], report: ExecutionReport) -> None:
        pending = [w for w in runnable if w.entry is None]
        calls = [
            PlannedCall(
                w.item.job,
                w.admission.reservation.model,
                w.admission.reservation.max_output_tokens,
                w.service_tier,
                w.cache,
                w.admission.reservation.input_tokens_estimate,
                bool(self.fallback_models(w)),
                w.carried_repeat,
                w.sent_in_transit,
                repeatable=self.settings.repeat_allowed(
                    w.item.job.agent_type, w.item.job.repeatable
                ),
            )
            for w in pending
            if w.admission is not None
        ]
        outcomes = call_all(self.context, calls) if calls else {}
        failed: list[str] = []
        for w in pending:
            outcome = outcomes.get(w.job_id)
            if outcome is None:
                continue
            self._take(w, outcome, report, failed)
        if failed:
            try:
                self.context.gate.release_many(failed)
            except DatabaseUnavailable:
                # Left reserved, a job still to run counts as possibly repeated later: the
                # money errs on the side of being charged.
                log.warning(
                    "could not release %d reservation(s) now; the sweeper will", len(failed)
                )

    def _take(
        self, w: JobWork, outcome: CallOutcome, report: ExecutionReport, failed: list[str]
    ) -> None:
        if outcome.entry is not None:
            w.entry = outcome.entry
            w.cache_tier = "single_flight" if outcome.from_peer else None
            if outcome.possibly_repeated and not outcome.from_peer:
                self._sent_in_transit(w, outcome.possibly_repeated)
            return
        error = outcome.error
        assert error is not None
        if error.maybe_sent:
            # Its reservation stays: a retry carries it over and a final failure settles it.
            self._sent_in_transit(w, error.maybe_sent)
        if isinstance(error, FallbackNeeded) and self.fallback_models(w):
            w.fallback = error  # released and re-admitted at the next model by `fall_back`
            return
        retry = error.retryable and w.item.attempts <= self.settings.job_max_retries
        if retry:
            report.retry[w.job_id] = error
        if not w.possible_repeat:
            # This call answered with an error (nothing to pay): the next attempt reserves
            # afresh, and a reservation it finds left over means a call of unknown outcome.
            failed.append(w.job_id)
        if retry:
            return
        w.result = ended(
            w.item, w.admission, error, provider=self.provider_name, status=JobStatus.FAILED
        )

    def _carry(self, work: list[JobWork]) -> list[str]:
        """Before the completion (which may not be written): how many calls of unknown outcome
        each job would leave to a next attempt at its standing reservation, where more than
        the one that reservation alone tells of, and no count where an earlier attempt's
        could be stale. Jobs on their first attempt with none pay no round trip. Returns the
        jobs given a count."""
        counts = {
            w.job_id: w.unknown_calls.calls if w.unknown_calls.calls > 1 else 0
            for w in work
            if w.unknown_calls.calls > 1 or w.item.attempts > 1
        }
        if counts:
            self.context.journal.carry(counts)
        return [job_id for job_id, calls in counts.items() if calls]

    def _sent_in_transit(self, w: JobWork, requests: int) -> None:
        """`requests` of this job's call failed after the provider may have received them:
        charged at the reservation, as possibly repeated calls."""
        w.sent_in_transit += requests
        log.warning(
            "job %s: %d request(s) failed in transit after the provider may have received "
            "them; charged as possibly repeated",
            w.job_id,
            requests,
        )

    def _complete(
        self, work: list[JobWork], report: ExecutionReport, batched: list[JobWork]
    ) -> ExecutionReport:
        answered_work = [w for w in work if w.entry is not None and w.result is None]
        paid: dict[str, CacheEntry] = {}
        hits: list[CacheHit] = []
        for w in answered_work:
            assert w.entry is not None and w.admission is not None
            if w.cache_tier is None:
                paid[w.job_id] = w.entry
                continue
            if w.possible_repeat:
                continue  # charged below as a possibly repeated call, not as a cache hit
            job = w.item.job
            model = w.admission.reservation.model
            hits.append(CacheHit(w.job_id, job.tenant, job.agent_type, model, w.entry.usage))

        def results(costs: Mapping[str, Decimal]) -> list[JobResult]:
            for w in answered_work:
                assert w.entry is not None and w.admission is not None
                w.result = answered(
                    w.item,
                    w.admission,
                    w.entry,
                    provider=self.provider_name,
                    cost=costs.get(w.job_id, Decimal(0)),
                    service_tier=w.service_tier,
                    cache_tier=w.cache_tier,
                    tokens_saved=w.tokens_saved,
                )
            for w in work:
                if w.note and w.result is not None:
                    why = w.result.model_reason
                    w.result = w.result.model_copy(
                        update={"model_reason": f"{w.note}; {why}" if why else w.note}
                    )
            return [w.result for w in work if w.result is not None]

        usages = {job_id: entry.usage for job_id, entry in paid.items()}
        # Calls possibly paid without their answer kept (an earlier attempt's, requests that
        # failed in transit), whether or not the job is paid now: each is charged at the
        # reservation, on top of the job's own usage if any. A job put back to retry keeps its
        # reservation, and its next attempt charges them (carried over).
        repeats = {
            w.job_id: w.unknown_calls
            for w in work
            if w.possible_repeat and w.job_id not in report.retry and w.job_id not in report.waiting
        }
        for job_id in repeats:
            usages.setdefault(job_id, TokenUsage())
        carried = self._carry(work)
        rows = [
            batch_member(self.context, w.item.job, w.admission)
            for w in batched
            if w.admission is not None
        ]
        waits = {
            w.job_id: w.admission.waiting_for or ""
            for w in work
            if w.job_id in report.waiting and w.admission is not None
        }
        completion = Completion(
            usages,
            hits,
            results,
            report.deferred,
            list(report.retry),
            possible_repeats=repeats,
            journaled=self.context.journal.sql_rows(
                list(paid), [w.job_id for w in answered_work if w.item.attempts > 1]
            ),
            waiting=waits,
            batched=rows,
        )
        try:
            written = self.context.group_commit.complete(completion)
        except DatabaseUnavailable as error:
            # The provider was paid: its answers are journaled, so the retry settles them.
            for w in work:  # nothing of this step was written: every job comes back
                report.retry[w.job_id] = error
            report.deferred.clear()
            report.waiting.clear()
            return report
        charged = [job_id for job_id in carried if job_id in repeats]
        if charged:  # this completion charged their calls: the counts go
            self.context.journal.carry(dict.fromkeys(charged, 0))
        final = [w.result for w in work if w.result is not None and w.job_id in written]
        report.failed.update(
            {r.job_id: r.error for r in final if r.status == JobStatus.FAILED and r.error}
        )
        finished = {result.job_id for result in final}
        # Counted before the results go out: whoever waited for them then scrapes them counted.
        self.context.metrics.group_finished(
            [FinishedJob(w.item.job, w.result) for w in work if w.result and w.job_id in finished],
            [w.item.job for w in work if w.job_id in report.deferred],
            size=len(work),
        )
        self._publish_settled(final, list(paid))
        # Fresh answers were written to the cache tiers by their single-flight tickets.
        return report

    # Recovery ------------------------------------------------------------------------------

    def _republish_final(self, job_ids: Sequence[str]) -> None:
        """A redelivered message for a finished job: make sure its waiter can see the result,
        and drop an answer still kept for it (its worker died between settling and `forget`)."""
        try:
            with self.context.sessions() as session:
                records = jobs_repository.get_records(session, job_ids)
        except (OperationalError, DBAPIError):
            return
        final = [r for r in map(jobs_repository.record_to_result, records) if r.is_final]
        self._publish_settled(final, [r.job_id for r in final])

    def _publish_settled(self, final: Sequence[JobResult], settled: Sequence[str]) -> None:
        """The results go out and the settled answers leave the journal in one round trip,
        the results first, so that a waiting client is woken before the journal's deletes."""
        pipe = self.context.results.client.pipeline(transaction=False)
        self.context.results.publish(final, pipe=pipe)
        self.context.journal.forget(settled, pipe=pipe)
        pipe.execute()
