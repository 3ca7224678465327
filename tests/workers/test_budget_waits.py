"""A budget near its limit on the real path (one worker process, PostgreSQL): jobs wait for
room other jobs' reservations hold instead of being refused, the limit is never crossed, and
a budget whose money is really spent refuses at once."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

from sqlalchemy import func, select

from agentqueue.budget.budget_limits import set_budget
from agentqueue.budget.gate import BudgetGate
from agentqueue.jobs import AgentJob, JobStatus, utcnow
from agentqueue.money import format_usd
from agentqueue.persistence.job_table import JobRecord
from agentqueue.persistence.ledger_tables import BudgetUsageRecord, LedgerEntryRecord
from tests.budget.conftest import admit
from tests.support.pipeline import Pipeline, simple_job

LIMIT = Decimal("0.002")
JOBS = 60
# Long words: the input estimate (by characters, as for any model) is near 140 tokens while
# the simulated model counts 25, so a worst case near $0.00005 on gpt-4o-mini with max_tokens
# 50 (the $0.002 limit holds about 40 reservations while 60 jobs want to run at once) and a
# real cost near a third of it: the scenario.
QUESTION = " ".join(["incomprehensibilities"] * 25)


def big_job(index: int) -> dict[str, object]:
    return simple_job(
        index,
        tenant="acme",
        priority="high",
        messages=[{"role": "user", "content": f"{index}: {QUESTION}"}],
        params={"temperature": 0.7, "max_tokens": 50},
    )


def test_sixty_jobs_near_the_limit_wait_instead_of_being_refused(pipeline: Pipeline) -> None:
    """Given a $0.002 daily budget on tenant acme and 60 high jobs submitted at once to one
    worker (64 threads, provider at 300 ms) whose worst cases add up to more than the limit,
    then: none is refused while the day's spend ends more than one reservation below the
    limit; spent + reserved never exceeds the limit at any sampled moment; some jobs really
    waited, queued (not running) meanwhile; all 60 end final."""
    sessions = pipeline.queue.sessions
    gate = BudgetGate(sessions, pipeline.settings)
    [twin] = admit(gate, [AgentJob.model_validate({**big_job(99), "tenant": "other"})])
    reservation = twin.reservation.reserved_usd
    gate.release_many([twin.job_id])
    assert JOBS * reservation > LIMIT * Decimal("1.2")  # worst cases really crowd the budget
    set_budget(sessions, "tenant:acme", "daily", LIMIT, now=utcnow(), timezone="UTC")
    pipeline.start_worker(
        concurrency=64, env={"AGENTQUEUE_SIMULATED_LATENCY_MS": "300"}, loglevel="INFO"
    )

    samples: list[tuple[Decimal, Decimal, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            with sessions() as session:
                usage = session.execute(
                    select(BudgetUsageRecord.spent_usd, BudgetUsageRecord.reserved_usd).where(
                        BudgetUsageRecord.scope == "tenant:acme",
                        BudgetUsageRecord.period == "daily",
                    )
                ).first()
                waiting = session.scalar(
                    select(func.count()).where(
                        JobRecord.waiting_since.is_not(None), JobRecord.status == "queued"
                    )
                )
            if usage is not None:
                samples.append((usage.spent_usd, usage.reserved_usd, int(waiting or 0)))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        handles = pipeline.queue.submit_many([big_job(i) for i in range(JOBS)], packed=False)
        results = pipeline.queue.wait([h.id for h in handles], timeout=120)
    finally:
        stop.set()
        sampler.join(timeout=5)

    assert len(results) == JOBS and all(r.status.is_final for r in results.values())
    refused = [r for r in results.values() if r.status is JobStatus.REJECTED]
    with sessions() as session:
        spent = sum(
            session.scalars(
                select(LedgerEntryRecord.cost_usd).where(LedgerEntryRecord.tenant == "acme")
            ).all(),
            Decimal(0),
        )
    assert samples, "the ledger was never sampled"
    assert all(s + r <= LIMIT for s, r, _ in samples), max(s + r for s, r, _ in samples)
    assert max(waiting for _, _, waiting in samples) > 0, "no job ever waited: no test"
    assert spent < LIMIT - reservation, f"spent {spent}: the scenario needs room left"
    assert refused == [], [r.error for r in refused]
    assert {r.status for r in results.values()} == {JobStatus.SUCCEEDED}
    assert max(r.attempts for r in results.values()) == 1  # waits are not attempts


def test_a_budget_really_spent_refuses_at_once_naming_scope_window_spent_and_limit(
    pipeline: Pipeline,
) -> None:
    """Given tenant acme's daily budget set to exactly what it has spent, new jobs are refused
    at once (no wait) with budget_exceeded and a message naming scope, window, spent, limit."""
    pipeline.start_worker()
    warmup = pipeline.queue.submit_many([big_job(i) for i in range(3)], packed=False)
    pipeline.queue.wait([h.id for h in warmup], timeout=30)
    with pipeline.queue.sessions() as session:
        spent = sum(session.scalars(select(LedgerEntryRecord.cost_usd)).all(), Decimal(0))
    set_budget(pipeline.queue.sessions, "tenant:acme", "daily", spent, now=utcnow(), timezone="UTC")

    started = time.monotonic()
    handles = pipeline.queue.submit_many([big_job(i) for i in range(10, 15)], packed=False)
    results = pipeline.queue.wait([h.id for h in handles], timeout=30)
    elapsed = time.monotonic() - started

    assert elapsed < 5.0  # refused at once, not after a wait
    today = utcnow().date().isoformat()
    for result in results.values():
        assert result.status is JobStatus.REJECTED
        assert result.error is not None and result.error.code == "budget_exceeded"
        message = result.error.message
        shown = format_usd(spent)  # money in messages goes through the one formatter
        assert f"the daily budget of tenant:acme ({shown} for {today} UTC)" in message
        assert f"is used up: {shown} of {shown} is spent" in message
        assert result.attempts == 1
