"""One database transaction for every group that reaches the same step at the same moment.

Each batch of jobs needs three transactions (claim, admission, settlement with the final
records). Under load many batches of one worker reach a step together; each step has a
`Coalescer`, so they share one transaction per step instead of paying BEGIN, COMMIT and every
statement once per batch. A lone batch runs at once, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from agentqueue.budget.gate import Admission, AdmissionGroup, BudgetGate, Completion
from agentqueue.jobs import utcnow
from agentqueue.persistence import jobs_repository
from agentqueue.persistence.jobs_repository import ClaimedJob
from agentqueue.workers.coalescer import Coalescer
from agentqueue.workers.lease_keeper import LeaseKeeper

# Enough to merge every batch a busy worker has in flight at one step, few enough that a
# transaction stays well inside SQLite's limit on statement parameters even for packed
# batches of 1,000 jobs.
GROUPS_PER_TRANSACTION = 8


class GroupCommit:
    """Claim, admit and complete groups of jobs, several groups per transaction under load."""

    def __init__(
        self, sessions: sessionmaker[Session], gate: BudgetGate, leases: LeaseKeeper | None = None
    ) -> None:
        self._sessions = sessions
        self._leases = leases
        most = GROUPS_PER_TRANSACTION
        self._claims: Coalescer[Sequence[str], list[ClaimedJob]] = Coalescer(
            self.claim_groups, max_requests=most
        )
        self._admissions: Coalescer[AdmissionGroup, list[Admission]] = Coalescer(
            gate.admit_groups, max_requests=most
        )
        self._completions: Coalescer[Completion[Any], Any] = Coalescer(
            gate.complete_groups, max_requests=most
        )

    def claim(self, job_ids: Sequence[str]) -> list[ClaimedJob]:
        """`jobs_repository.claim` of these ids; a job asked for by two groups goes to one.

        Raises:
            sqlalchemy.exc.DBAPIError: the database failed (the caller retries).
        """
        return self._claims.submit(job_ids)

    def admit(self, group: AdmissionGroup) -> list[Admission]:
        """`BudgetGate.admit_many` of one group (raises `LedgerUnavailable` like it)."""
        return self._admissions.submit(group)

    def complete(self, completion: Completion[Any]) -> Any:
        """`BudgetGate.complete` of one group (raises `LedgerUnavailable` like it)."""
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
