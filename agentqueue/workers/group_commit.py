"""One database transaction for every group that reaches the same step at the same moment.

Each batch of jobs needs three transactions (claim, admission, settlement with the final
records). Under load many batches of one worker reach a step together; each step has a
`Coalescer`, so they share one transaction per step instead of paying BEGIN, COMMIT and every
statement once per batch. A lone batch runs at once, as before.

The worker owns these transactions: it opens them and calls the jobs repository and the budget
gate inside; the budget package never runs worker code.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker

from agentqueue.budget.gate import Admission, AdmissionGroup, BudgetGate, CacheHit
from agentqueue.constants import MAX_RETRY_COUNTDOWN_S
from agentqueue.jobs import JobResult, utcnow
from agentqueue.persistence import answers_repository, jobs_repository
from agentqueue.persistence.jobs_repository import ClaimedJob
from agentqueue.persistence.transactions import in_transaction
from agentqueue.usage import TokenUsage
from agentqueue.workers.coalescer import Coalescer
from agentqueue.workers.lease_keeper import LeaseKeeper

# Enough to merge every batch a busy worker has in flight at one step, few enough that a
# transaction stays well inside SQLite's limit on statement parameters even for packed
# batches of 1,000 jobs.
GROUPS_PER_TRANSACTION = 8


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
    # Jobs an earlier attempt may have paid a call for without keeping its answer: that call
    # is charged at its reservation too (see `Ledger.settle_in`).
    possible_repeats: Collection[str] = ()
    # Jobs whose journaled answer this step settles: the journal rows go with it.
    journaled: Sequence[str] = ()
    waiting: Mapping[str, str] = field(default_factory=dict)


class GroupCommit:
    """Claim, admit and complete groups of jobs, several groups per transaction under load."""

    def __init__(
        self, sessions: sessionmaker[Session], gate: BudgetGate, leases: LeaseKeeper | None = None
    ) -> None:
        self._sessions = sessions
        self._gate = gate
        self._leases = leases
        most = GROUPS_PER_TRANSACTION
        self._claims: Coalescer[Sequence[str], list[ClaimedJob]] = Coalescer(
            self.claim_groups, max_requests=most
        )
        self._admissions: Coalescer[AdmissionGroup, list[Admission]] = Coalescer(
            gate.admit_groups, max_requests=most
        )
        self._completions: Coalescer[Completion, set[str]] = Coalescer(
            self.complete_groups, max_requests=most
        )

    def claim(self, job_ids: Sequence[str]) -> list[ClaimedJob]:
        """`jobs_repository.claim` of these ids; a job asked for by two groups goes to one.

        Raises:
            sqlalchemy.exc.DBAPIError: the database failed (the caller retries).
        """
        return self._claims.submit(job_ids)

    def admit(self, group: AdmissionGroup) -> list[Admission]:
        """`BudgetGate.admit_groups` of one group (raises `DatabaseUnavailable` like it)."""
        return self._admissions.submit(group)

    def complete(self, completion: Completion) -> set[str]:
        """`complete_groups` of one group: the ids that got their final record.

        Raises:
            DatabaseUnavailable: nothing of the step was written; retry it later.
        """
        return self._completions.submit(completion)

    def claim_groups(self, requests: Sequence[Sequence[str]]) -> list[list[ClaimedJob]]:
        """Claim several groups' ids in one transaction; a job asked for twice goes to the
        first group that asked (the others see it as not claimable)."""
        wanted = list(dict.fromkeys(job_id for ids in requests for job_id in ids))
        now = utcnow()
        leases = self._leases
        held = set(leases.held()) if leases else set()
        with self._sessions.begin() as session:
            claimed = jobs_repository.claim(
                session,
                wanted,
                now=now,
                owner=leases.owner if leases else "",
                lease_until=leases.lease_until(now) if leases else None,
                own=[job_id for job_id in wanted if job_id not in held],
            )
        if leases is not None:  # renewed from now on, until the executor drops them
            leases.hold(item.job.id for item in claimed)
        by_id = {item.job.id: item for item in claimed}
        shares = []
        for ids in requests:
            share = [by_id.pop(job_id) for job_id in ids if job_id in by_id]
            shares.append(share)
        return shares

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
        repeats = {job_id for c in completions for job_id in c.possible_repeats}
        journaled = [job_id for c in completions for job_id in c.journaled]
        waiting = {job_id: label for c in completions for job_id, label in c.waiting.items()}

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
            return [{r.job_id for r in rs} & written for rs in results]

        return in_transaction(self._sessions, work)

    def retry_due(self, now: datetime) -> datetime | None:
        """When a retry's message should have been claimed by, at the latest: past its
        longest backoff plus a lease (after that, the sweepers send the job again)."""
        if self._leases is None:
            return None
        return now + timedelta(seconds=self._leases.lease_s + MAX_RETRY_COUNTDOWN_S)
