"""Several groups in one transaction per step: claim, admission and completion (real DBs)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agentqueue.budget.gate import AdmissionGroup, BudgetGate, Completion, Settlement
from agentqueue.jobs import JobStatus, utcnow
from agentqueue.persistence import jobs_repository
from agentqueue.persistence.engine import get_sessionmaker
from agentqueue.persistence.job_table import JobRecord
from agentqueue.persistence.ledger_tables import LedgerEntryRecord
from agentqueue.workers.group_commit import GroupCommit
from tests.budget.conftest import NOON, make_gate, make_job

__all__ = ["make_gate"]  # the fixture, shared with the budget tests

GateFactory = Callable[..., BudgetGate]


def test_claims_of_several_groups_give_each_job_to_exactly_one(
    make_gate: GateFactory, database_url: str
) -> None:
    """Given 6 queued jobs and one already finished, when two groups that overlap claim
    through one run, then every queued job is claimed once, the finished one by nobody."""
    sessions = get_sessionmaker(database_url)
    jobs = [make_job(f"job-{n}") for n in range(7)]
    with sessions.begin() as session:
        jobs_repository.insert_new(session, jobs, status=JobStatus.QUEUED, now=utcnow())
        session.execute(
            JobRecord.__table__.update()
            .where(JobRecord.__table__.c.id == "job-6")
            .values(status=JobStatus.SUCCEEDED.value)
        )
    commit = GroupCommit(sessions, make_gate())
    first, second = commit.claim_groups(
        [["job-0", "job-1", "job-2", "job-3"], ["job-3", "job-4", "job-5", "job-6"]]
    )
    assert [c.job.id for c in first] == ["job-0", "job-1", "job-2", "job-3"]
    assert [c.job.id for c in second] == ["job-4", "job-5"]
    assert all(c.attempts == 1 for c in first + second)


def test_groups_admitted_together_keep_their_own_tier_and_order(make_gate: GateFactory) -> None:
    """Given a standard group and a batch-tier group admitted in one transaction, then each
    gets its admissions in its own order and tier, and each job is reserved once."""
    gate = make_gate()
    when = datetime(2026, 11, 2, 12, tzinfo=UTC)
    standard = AdmissionGroup([make_job("s-1"), make_job("s-2")], when)
    batch = AdmissionGroup([make_job("b-1", model="gpt-4o")], when, service_tier="batch")
    first, second = gate.admit_groups([standard, batch])
    assert [a.service_tier for a in first] == ["standard", "standard"]
    assert [a.model for a in first] == ["gpt-4o-mini", "gpt-4o-mini"]
    assert [(a.service_tier, a.model) for a in second] == [("batch", "gpt-4o")]
    with gate.sessions() as session:
        assert session.scalar(select(func.count()).select_from(LedgerEntryRecord)) == 3


def test_completions_share_one_transaction_all_or_nothing(make_gate: GateFactory) -> None:
    """Given two admitted groups, when their completion runs together and the second group's
    own writes fail, then neither group's settlement is kept; run again, both settle."""
    gate = make_gate()
    gate.admit_many([make_job("a"), make_job("b")], now=NOON)

    def ok(session: Session, costs: dict[str, Decimal]) -> str:
        return "first done"

    def broken(session: Session, costs: dict[str, Decimal]) -> str:
        raise RuntimeError("writing the records failed")

    first = Completion([Settlement("a", 10, 5)], [], ok)
    with pytest.raises(RuntimeError, match="records failed"):
        gate.complete_groups([first, Completion([Settlement("b", 10, 5)], [], broken)])
    with gate.sessions() as session:
        rows = session.execute(select(LedgerEntryRecord.job_id, LedgerEntryRecord.state))
        states = {job_id: state for job_id, state in rows}
    assert states == {"a": "reserved", "b": "reserved"}

    seen: dict[str, Decimal] = {}

    def collect(session: Session, costs: dict[str, Decimal]) -> str:
        seen.update(costs)
        return "second done"

    results = gate.complete_groups([first, Completion([Settlement("b", 10, 5)], [], collect)])
    assert results == ["first done", "second done"]
    assert set(seen) == {"a", "b"} and all(cost > 0 for cost in seen.values())
