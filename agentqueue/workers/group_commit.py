"""One database transaction for every group that reaches the same step at the same moment.

Each batch of jobs needs two transactions: the start (claim and admission, with its
reservations) and the completion (settlement with the final records). Under load many batches
of one worker reach a step together; each step has a `Coalescer`, so they share one
transaction per step instead of paying BEGIN, COMMIT and every statement once per batch. A
lone batch runs at once, as before.

The worker owns these transactions: it opens them and calls the jobs repository and the budget
gate inside; the budget package never runs worker code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker

from agentqueue.budget.gate import (
    Admission,
    AdmissionGroup,
    AdmittedGroups,
    BudgetGate,
    CacheHit,
)
from agentqueue.budget.possible_repeats import PossibleRepeat
from agentqueue.constants import MAX_RETRY_COUNTDOWN_S
from agentqueue.jobs import JobResult, utcnow
from agentqueue.persistence import answers_repository, batch_repository, jobs_repository
from agentqueue.persistence.jobs_repository import ClaimedJob
from agentqueue.persistence.transactions import in_transaction
from agentqueue.usage import TokenUsage
from agentqueue.workers.coalescer import Coalescer
from agentqueue.workers.lease_keeper import LeaseKeeper

# Enough to merge every batch a busy worker has in flight at one step, few enough that a
# transaction stays well inside SQLite's limit on statement parameters even for packed
# batches of 1,000 jobs.
GROUPS_PER_TRANSACTION = 8


# Turns a group's claimed jobs into the groups to admit (one per tier). It runs inside the
# start's transaction, which may be rerun: it must be safe to call again, and do no I/O.
Plan = Callable[[list[ClaimedJob]], Sequence[AdmissionGroup]]


@dataclass(frozen=True)
class Start:
    """One group's start: the ids it was sent, and how to admit the ones it claims."""

    job_ids: Sequence[str]
    plan: Plan


@dataclass(frozen=True)
class Started:
    """The jobs a group claimed, in the order it asked, and each one's admission (job id ->
    admission)."""

    claimed: list[ClaimedJob]
    admissions: Mapping[str, Admission]


@dataclass(frozen=True)
class Completion:
    """One group's finished work: the usage of its paid jobs (job id -> usage), its cache
    hits, its final records (built once the costs are known: job id -> cost; it may be
    called again if the transaction is rerun), and the jobs to defer, to put back in the
    queue, or to put back to wait for budget room (job id -> "<period>:<scope>").
    """

    usages: Mapping[str, TokenUsage]
    cache_hits: Sequence[CacheHit]
    results: Callable[[Mapping[str, Decimal]], Sequence[JobResult]]
    deferred: Mapping[str, datetime] = field(default_factory=dict)
    requeued: Sequence[str] = ()
    # Jobs that may have paid for calls without keeping their answer (an earlier attempt
    # died, requests failed in transit): those calls are charged at the reservation too (see
    # `Ledger.settle_in`).
    possible_repeats: Mapping[str, PossibleRepeat] = field(default_factory=dict)
    # Jobs whose journaled answer this step settles: the journal rows go with it.
    journaled: Sequence[str] = ()
    waiting: Mapping[str, str] = field(default_factory=dict)
    batched: Sequence[Mapping[str, object]] = ()  # rows of jobs that wait for a provider batch


class GroupCommit:
    """Start (claim and admit) and complete groups of jobs, several groups per transaction
    under load."""

    def __init__(
        self, sessions: sessionmaker[Session], gate: BudgetGate, leases: LeaseKeeper | None = None
    ) -> None:
        self._sessions = sessions
        self._gate = gate
        self._leases = leases
        most = GROUPS_PER_TRANSACTION
        self._starts: Coalescer[Start, Started] = Coalescer(self.start_groups, max_requests=most)
        self._admissions: Coalescer[AdmissionGroup, list[Admission]] = Coalescer(
            gate.admit_groups, max_requests=most
        )
        self._completions: Coalescer[Completion, set[str]] = Coalescer(
            self.complete_groups, max_requests=most
        )

    def start(self, start: Start) -> Started:
        """`start_groups` of one group.

        Raises:
            DatabaseUnavailable: nothing was claimed or reserved; retry later.
        """
        return self._starts.submit(start)

    def admit(self, group: AdmissionGroup) -> list[Admission]:
        """`BudgetGate.admit_groups` of one group of jobs this worker holds already (a
        fallback's new model); raises `DatabaseUnavailable` like it."""
        return self._admissions.submit(group)

    def complete(self, completion: Completion) -> set[str]:
        """`complete_groups` of one group: the ids that got their final record.

        Raises:
            DatabaseUnavailable: nothing of the step was written; retry it later.
        """
        return self._completions.submit(completion)

    def start_groups(self, requests: Sequence[Start]) -> list[Started]:
        """Claim several groups' ids and admit what each claimed, in ONE transaction: a job
        asked for by two groups goes to the first that asked (the others see it as not
        claimable), and a job is never claimed without its admission or reserved unclaimed.

        Raises:
            DatabaseUnavailable: nothing was written; retry the whole step later.
        """
        wanted = list(dict.fromkeys(job_id for r in requests for job_id in r.job_ids))
        now = utcnow()
        leases = self._leases
        held = set(leases.held()) if leases else set()

        def work(
            session: Session,
        ) -> tuple[list[list[ClaimedJob]], list[Sequence[AdmissionGroup]], AdmittedGroups]:
            claimed = jobs_repository.claim(
                session,
                wanted,
                now=now,
                owner=leases.owner if leases else "",
                lease_until=leases.lease_until(now) if leases else None,
                own=[job_id for job_id in wanted if job_id not in held],
                ledger_writer=True,  # the writers' lock comes with the claim, not on its own
            )
            by_id = {item.job.id: item for item in claimed}
            shares = [
                [by_id.pop(job_id) for job_id in r.job_ids if job_id in by_id] for r in requests
            ]
            plans = [
                r.plan(share) if share else () for r, share in zip(requests, shares, strict=True)
            ]
            groups = [group for plan in plans for group in plan]
            states = {item.job.id: item.entry_state for share in shares for item in share}
            admitted = self._gate.admit_groups_in(session, groups, entry_states=states)
            return shares, plans, admitted

        shares, plans, admitted = in_transaction(self._sessions, work)
        if leases is not None:  # renewed from now on, until the executor drops them
            leases.hold(item.job.id for share in shares for item in share)
        self._gate.announce(admitted)
        per_group = iter(admitted.admissions)
        started = []
        for share, plan in zip(shares, plans, strict=True):
            admissions: dict[str, Admission] = {}
            for group in plan:
                admissions.update(
                    (job.id, a) for job, a in zip(group.jobs, next(per_group), strict=True)
                )
            started.append(Started(share, admissions))
        return started

    def complete_groups(self, completions: Sequence[Completion]) -> list[set[str]]:
        """Settle, record cache hits and write the final records, deferrals, requeues and waits of
        several groups in ONE transaction, so a job is never charged without its record or
        recorded without its charge; per group, the ids that got their final record.

        Raises:
            DatabaseUnavailable: nothing was written; retry the whole step later.
        """
        usages = {job_id: u for c in completions for job_id, u in c.usages.items()}
        hits = [hit for c in completions for hit in c.cache_hits]
        deferred = {job_id: when for c in completions for job_id, when in c.deferred.items()}
        requeued = [job_id for c in completions for job_id in c.requeued]
        repeats = {job_id: r for c in completions for job_id, r in c.possible_repeats.items()}
        journaled = [job_id for c in completions for job_id in c.journaled]
        waiting = {job_id: label for c in completions for job_id, label in c.waiting.items()}
        batched = [row for c in completions for row in c.batched]

        def work(session: Session) -> list[set[str]]:
            now = utcnow()
            costs = self._gate.settle_in(session, usages, now=now, possible_repeats=repeats)
            self._gate.record_cache_hits_in(session, hits, now=now)
            results = [c.results(costs) for c in completions]
            written = jobs_repository.finish(session, [r for rs in results for r in rs])
            if deferred:
                jobs_repository.defer_running(session, deferred)
            if requeued:
                jobs_repository.requeue(session, requeued, message_due=self.retry_due(now))
            if journaled:
                answers_repository.forget(session, journaled)
            if waiting:
                jobs_repository.wait_for_budget(
                    session, waiting, now=now, message_due=self.retry_due(now)
                )
            if batched:
                batch_repository.enlist(session, batched)
            return [{r.job_id for r in rs} & written for rs in results]

        return in_transaction(self._sessions, work)

    def retry_due(self, now: datetime) -> datetime | None:
        """When a retry's message should have been claimed by, at the latest: past its
        longest backoff plus a lease (after that, the sweepers send the job again)."""
        if self._leases is None:
            return None
        return now + timedelta(seconds=self._leases.lease_s + MAX_RETRY_COUNTDOWN_S)
