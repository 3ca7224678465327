"""Several groups in one transaction per step: start (claim and admission) and completion
(real DBs)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from agentqueue.budget.gate import AdmissionGroup, BudgetGate
from agentqueue.jobs import JobResult, JobStatus, utcnow
from agentqueue.persistence import jobs_repository
from agentqueue.persistence.engine import get_sessionmaker
from agentqueue.persistence.job_table import JobRecord
from agentqueue.persistence.jobs_repository import ClaimedJob
from agentqueue.persistence.ledger_tables import LedgerEntryRecord
from agentqueue.usage import TokenUsage
from agentqueue.workers.group_commit import Completion, GroupCommit, Start
from tests.budget.conftest import NOON, make_gate, make_job
from tests.budget.test_gate import FILLER_PRICES
from tests.budget.test_usage_rows import assert_recounts_exact_while

__all__ = ["make_gate"]  # the fixture, shared with the budget tests

GateFactory = Callable[..., BudgetGate]


def admit_all(claimed: list[ClaimedJob]) -> list[AdmissionGroup]:
    return [AdmissionGroup([c.job for c in claimed], NOON)]


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
    first, second = commit.start_groups(
        [
            Start(["job-0", "job-1", "job-2", "job-3"], admit_all),
            Start(["job-3", "job-4", "job-5", "job-6"], admit_all),
        ]
    )
    assert [c.job.id for c in first.claimed] == ["job-0", "job-1", "job-2", "job-3"]
    assert [c.job.id for c in second.claimed] == ["job-4", "job-5"]
    assert all(c.attempts == 1 for c in first.claimed + second.claimed)
    assert set(first.admissions) == {"job-0", "job-1", "job-2", "job-3"}
    assert set(second.admissions) == {"job-4", "job-5"}
    with sessions() as session:
        entries = set(session.scalars(select(LedgerEntryRecord.job_id)))
    assert entries == {f"job-{n}" for n in range(6)}


def test_a_start_that_fails_leaves_no_claim_and_no_reservation(
    make_gate: GateFactory, database_url: str
) -> None:
    """Given queued jobs, when planning their admission fails inside the start, then no job is
    left running and no reservation is kept: claim and admission are one transaction."""
    sessions = get_sessionmaker(database_url)
    with sessions.begin() as session:
        jobs_repository.insert_new(
            session, [make_job("x"), make_job("y")], status=JobStatus.QUEUED, now=utcnow()
        )

    def broken(claimed: list[ClaimedJob]) -> list[AdmissionGroup]:
        raise RuntimeError("planning failed")

    commit = GroupCommit(sessions, make_gate())
    with pytest.raises(RuntimeError, match="planning failed"):
        commit.start_groups([Start(["x", "y"], broken)])
    with sessions() as session:
        statuses = {i: s for i, s in session.execute(select(JobRecord.id, JobRecord.status))}
        assert session.scalar(select(func.count()).select_from(LedgerEntryRecord)) == 0
    assert statuses == {"x": "queued", "y": "queued"}
    [started] = commit.start_groups([Start(["x", "y"], admit_all)])
    assert [c.job.id for c in started.claimed] == ["x", "y"]


def test_a_job_claimed_again_is_admitted_from_the_entry_state_its_claim_read(
    make_gate: GateFactory, database_url: str
) -> None:
    """Given three started jobs whose entries are then reserved, released and settled, and
    which are queued again (a lost worker, a retry), when they start again, then the claim
    reports each entry's state and admission follows it: the reserved one gets its
    reservation back, the released one is reserved afresh, the settled one is done; no job
    gets a second entry."""
    sessions = get_sessionmaker(database_url)
    ids = ["again-0", "again-1", "again-2"]
    with sessions.begin() as session:
        jobs_repository.insert_new(
            session, [make_job(i) for i in ids], status=JobStatus.QUEUED, now=utcnow()
        )
    commit = GroupCommit(sessions, make_gate())
    [first] = commit.start_groups([Start(ids, admit_all)])
    assert [c.entry_state for c in first.claimed] == [None, None, None]
    entries = LedgerEntryRecord.__table__
    with sessions.begin() as session:
        session.execute(entries.update().where(entries.c.job_id == ids[1]).values(state="released"))
        session.execute(entries.update().where(entries.c.job_id == ids[2]).values(state="settled"))
        session.execute(
            JobRecord.__table__.update()
            .where(JobRecord.__table__.c.id.in_(ids))
            .values(status=JobStatus.QUEUED.value)
        )
    [again] = commit.start_groups([Start(ids, admit_all)])
    assert [c.entry_state for c in again.claimed] == ["reserved", "released", "settled"]
    kept, renewed, done = (again.admissions[i] for i in ids)
    assert kept.carried_over and not kept.already_settled
    assert kept.reservation == first.admissions[ids[0]].reservation
    assert not renewed.carried_over and not renewed.already_settled
    assert renewed.reservation.reserved_usd > 0
    assert done.already_settled
    with sessions() as session:
        states = dict(session.execute(select(entries.c.job_id, entries.c.state)).all())
    assert states == {ids[0]: "reserved", ids[1]: "reserved", ids[2]: "settled"}


def test_groups_admitted_together_keep_their_own_tier_and_order(make_gate: GateFactory) -> None:
    """Given a standard group and a batch-tier group admitted in one transaction, then each
    gets its admissions in its own order and tier, and each job is reserved once."""
    gate = make_gate()
    when = datetime(2026, 11, 2, 12, tzinfo=UTC)
    standard = AdmissionGroup([make_job("s-1"), make_job("s-2")], when)
    batch = AdmissionGroup([make_job("b-1", model="gpt-4o")], when, service_tier="batch")
    first, second = gate.admit_groups([standard, batch])
    assert [a.reservation.service_tier for a in first] == ["standard", "standard"]
    assert [a.reservation.model for a in first] == ["gpt-4o-mini", "gpt-4o-mini"]
    assert [(a.reservation.service_tier, a.reservation.model) for a in second] == [
        ("batch", "gpt-4o")
    ]
    with gate.sessions() as session:
        assert session.scalar(select(func.count()).select_from(LedgerEntryRecord)) == 3


def test_completions_share_one_transaction_all_or_nothing(
    make_gate: GateFactory, database_url: str
) -> None:
    """Given two claimed and admitted groups, when their completion runs together and the
    second group's records cannot be built, then neither group's settlement nor record is
    kept; run again, both settle and each group learns which of its jobs got a record."""
    sessions = get_sessionmaker(database_url)
    gate = make_gate()
    with sessions.begin() as session:
        jobs_repository.insert_new(
            session, [make_job("a"), make_job("b")], status=JobStatus.QUEUED, now=utcnow()
        )
    commit = GroupCommit(sessions, gate)
    [started] = commit.start_groups([Start(["a", "b"], admit_all)])
    claimed = started.claimed
    seen: dict[str, Decimal] = {}

    def results_of(job_id: str) -> Callable[[Mapping[str, Decimal]], list[JobResult]]:
        def build(costs: Mapping[str, Decimal]) -> list[JobResult]:
            seen.update(costs)
            return [
                JobResult(job_id=job_id, status=JobStatus.SUCCEEDED, cost_usd=str(costs[job_id]))
            ]

        return build

    def broken(costs: Mapping[str, Decimal]) -> list[JobResult]:
        raise RuntimeError("building the records failed")

    first = Completion({"a": TokenUsage(10, 5)}, [], results_of("a"))
    with pytest.raises(RuntimeError, match="records failed"):
        commit.complete_groups([first, Completion({"b": TokenUsage(10, 5)}, [], broken)])
    with gate.sessions() as session:
        rows = session.execute(select(LedgerEntryRecord.job_id, LedgerEntryRecord.state))
        states = {job_id: state for job_id, state in rows}
        statuses = {i: s for i, s in session.execute(select(JobRecord.id, JobRecord.status))}
    assert states == {"a": "reserved", "b": "reserved"}
    assert statuses == {"a": "running", "b": "running"} and len(claimed) == 2

    second = Completion({"b": TokenUsage(10, 5)}, [], results_of("b"))
    assert commit.complete_groups([first, second]) == [{"a"}, {"b"}]
    assert set(seen) == {"a", "b"} and all(cost > 0 for cost in seen.values())
    with gate.sessions() as session:
        rows = session.execute(select(LedgerEntryRecord.job_id, LedgerEntryRecord.state))
        assert {job_id: state for job_id, state in rows} == {"a": "settled", "b": "settled"}


def test_a_budget_set_while_groups_start_and_complete_counts_every_job_exactly(
    make_gate: GateFactory, database_url: str, tmp_path: Path
) -> None:
    """Given 4 threads running groups through the worker's two transactions (whose claim
    joins the ledger writers), when a global budget is set again and again meanwhile, then its
    row equals the sum of the ledger entries: nothing reserved or settled during a recount was
    lost or counted twice."""
    prices = tmp_path / "prices.toml"
    prices.write_text(FILLER_PRICES)
    gate = make_gate(prices_file=prices)
    sessions = get_sessionmaker(database_url)
    commit = GroupCommit(sessions, gate)

    def step(worker: int, index: int) -> None:
        jobs = [
            make_job(f"w{worker}-{index}-{n}", model="filler", params={"max_tokens": 1})
            for n in range(2)
        ]
        with sessions.begin() as session:
            jobs_repository.insert_new(session, jobs, status=JobStatus.QUEUED, now=utcnow())
        started = commit.start(Start([job.id for job in jobs], admit_all))
        assert {a.decision for a in started.admissions.values()} == {"run"}
        if index % 3:  # leave every third group's reservations open
            done = [
                JobResult(
                    job_id=job.id, status=JobStatus.SUCCEEDED, output="ok", finished_at=utcnow()
                )
                for job in jobs
            ]
            usage = TokenUsage(input_tokens=0, output_tokens=1)
            commit.complete(Completion({job.id: usage for job in jobs}, [], lambda _: done))

    assert_recounts_exact_while(gate, sessions, step)
