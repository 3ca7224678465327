"""Leases: a dead worker's jobs come back in seconds, a live worker's jobs are never taken,
and the provider is paid once per job (or the ledger says it may have been paid twice).

Real worker processes, PostgreSQL, and the local OpenAI-compatible server, which counts every
provider call per job (each job's message text is unique).
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from agentqueue.constants import PENDING_ANSWER_INDEX_KEY, PENDING_ANSWER_PREFIX, TASK_RUN_JOB
from agentqueue.jobs import AgentJob, JobStatus
from agentqueue.persistence import jobs_repository
from agentqueue.persistence.answer_table import ProviderAnswerRecord
from agentqueue.persistence.job_table import JobRecord
from agentqueue.persistence.ledger_tables import LedgerEntryRecord
from agentqueue.testing.llm_server import LLMTestServer
from tests.support.pipeline import Pipeline, simple_job
from tests.workers.test_openai_provider_e2e import API_KEY, openai_env

LEASE_S = 5
RECOVERY_PROMISE_S = 30


@pytest.fixture
def llm_server() -> Iterator[LLMTestServer]:
    with LLMTestServer(api_key=API_KEY, latency_ms=50) as server:
        yield server


def calls_per_job(server: LLMTestServer) -> Counter[str]:
    """Provider calls per job, keyed by the job's message text."""
    return Counter(a.text for a in server.arrivals if a.path.endswith("/chat/completions"))


def _succeeded(pipeline: Pipeline) -> int:
    with pipeline.queue.sessions() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(JobRecord)
                .where(JobRecord.status == JobStatus.SUCCEEDED.value)
            )
            or 0
        )


def _answers_left(pipeline: Pipeline, *, within_s: float) -> list[bytes]:
    """The kept answers still in Redis once they are gone or `within_s` has passed."""
    deadline = time.monotonic() + within_s
    while True:
        left = list(pipeline.queue.redis.scan_iter(f"{PENDING_ANSWER_PREFIX}*"))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def _wait_for_progress(pipeline: Pipeline, done: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _succeeded(pipeline) < done and time.monotonic() < deadline:
        time.sleep(0.05)


def test_sigkill_three_times_during_1000_jobs_recovers_each_within_30_s(
    pipeline: Pipeline, llm_server: LLMTestServer
) -> None:
    """Given 1,000 jobs and a worker SIGKILLed at 20%, 45% and 70% of the run and restarted
    each time, then every job succeeds, each job a killed worker held finishes within 30 s of
    that worker's restart, no reservation is left open, and the provider was called once per
    job except where the ledger itself marks a call as possibly repeated."""
    env = openai_env(llm_server, AGENTQUEUE_JOB_LEASE_S=str(LEASE_S))
    jobs = [simple_job(i) for i in range(1000)]
    handles = pipeline.queue.submit_many(jobs, packed=False)
    worker = pipeline.start_worker(env=env, concurrency=16, name="w0")
    restarts: list[datetime] = []
    kills: list[datetime] = []
    for kill, share in enumerate((0.20, 0.45, 0.70), start=1):
        _wait_for_progress(pipeline, int(1000 * share))
        worker.kill()
        kills.append(datetime.now(UTC))
        assert _succeeded(pipeline) < 1000, "the kill must land in the middle of the run"
        worker = pipeline.start_worker(env=env, concurrency=16, name=f"w{kill}")
        restarts.append(datetime.now(UTC))

    results = pipeline.queue.wait([h.id for h in handles], timeout=90)

    assert {r.status for r in results.values()} == {JobStatus.SUCCEEDED}
    with pipeline.queue.sessions() as session:
        rows = session.execute(
            select(JobRecord.id, JobRecord.attempts, JobRecord.finished_at)
        ).all()
        entries = session.execute(
            select(
                LedgerEntryRecord.job_id,
                LedgerEntryRecord.state,
                LedgerEntryRecord.possible_repeat_usd,
                LedgerEntryRecord.charge_reason,
            )
        ).all()
        journal_left = session.scalar(select(func.count()).select_from(ProviderAnswerRecord))
    # Jobs a killed worker held ran again; each finished within the promise of the restart
    # that preceded it (the recovery time is printed for the closing note).
    rerun = [r for r in rows if r.attempts > 1]
    assert rerun, "some jobs were held by a killed worker and must have run again"
    recovery, since_kill = [], []
    for row in rerun:
        before = [t for t in restarts if t <= row.finished_at]
        assert before, f"job {row.id} ran again before any restart"
        recovery.append((row.finished_at - before[-1]).total_seconds())
        since_kill.append((row.finished_at - kills[len(before) - 1]).total_seconds())
    assert max(recovery) <= RECOVERY_PROMISE_S, recovery
    assert all(r.finished_at <= restarts[-1] + timedelta(seconds=RECOVERY_PROMISE_S) for r in rows)
    print(
        f"\nrecovery after SIGKILL (lease {LEASE_S} s): {len(rerun)} job(s) ran again; "
        f"finished {statistics.median(recovery):.1f} s (median) / {max(recovery):.1f} s (max) "
        f"after their worker's restart, {statistics.median(since_kill):.1f} s / "
        f"{max(since_kill):.1f} s after the kill"
    )
    # Money: every job settled once, nothing left reserved, nothing left in the journal.
    assert len(entries) == 1000 and {e.state for e in entries} == {"settled"}
    assert journal_left == 0
    # A worker killed between a settlement and dropping its answers left them; a sweep drops
    # them within about two leases.
    assert _answers_left(pipeline, within_s=3 * LEASE_S) == []
    marked = {e.job_id for e in entries if e.possible_repeat_usd > 0}
    assert all(e.charge_reason for e in entries if e.job_id in marked)
    # The provider: once per job, except calls the ledger marks as possibly repeated.
    calls = calls_per_job(llm_server)
    text_of = {h.id: job["messages"][0]["content"] for h, job in zip(handles, jobs, strict=True)}
    assert set(calls) == set(text_of.values())
    repeated = {job_id for job_id, text in text_of.items() if calls[text] > 1}
    assert repeated <= marked, "a job was paid twice without the ledger saying so"
    assert all(calls[text_of[job_id]] <= 2 for job_id in marked)
    assert sum(calls.values()) == 1000 + len(repeated)
    print(
        f"provider calls {sum(calls.values())} for 1000 jobs; "
        f"{len(marked)} marked possibly repeated"
    )


def test_a_worker_drops_the_answers_a_dead_worker_left_for_jobs_it_had_settled(
    pipeline: Pipeline, llm_server: LLMTestServer
) -> None:
    """Given a settled job and a deferred one, each with an answer kept in Redis as a worker
    SIGKILLed between its settlement and dropping them would leave it (kept a minute ago),
    when a worker runs, then its sweep drops the settled job's answer within about two leases
    and leaves the deferred job's, which that job's next attempt would still need."""
    worker_env = openai_env(llm_server, AGENTQUEUE_JOB_LEASE_S=str(LEASE_S))
    pipeline.start_worker(env=worker_env, concurrency=4)
    settled = pipeline.queue.submit(simple_job(1))
    assert settled.get(timeout=30).status is JobStatus.SUCCEEDED
    later = AgentJob.model_validate(simple_job(2))
    waiting = later.id
    with pipeline.queue.sessions.begin() as session:  # deferred to tomorrow: nothing runs it
        now = datetime.now(UTC)
        jobs_repository.insert_new(
            session,
            [later],
            status=JobStatus.DEFERRED,
            now=now,
            release_after={waiting: now + timedelta(days=1)},
        )
    redis_client = pipeline.queue.redis
    kept_at = time.time() - 60
    for job_id in (settled.id, waiting):
        redis_client.set(f"{PENDING_ANSWER_PREFIX}{job_id}", b"{}", ex=3600)
        redis_client.zadd(PENDING_ANSWER_INDEX_KEY, {job_id: kept_at})

    deadline = time.monotonic() + 3 * LEASE_S
    while redis_client.exists(f"{PENDING_ANSWER_PREFIX}{settled.id}") and (
        time.monotonic() < deadline
    ):
        time.sleep(0.2)

    assert not redis_client.exists(f"{PENDING_ANSWER_PREFIX}{settled.id}")
    assert redis_client.zscore(PENDING_ANSWER_INDEX_KEY, settled.id) is None
    assert redis_client.exists(f"{PENDING_ANSWER_PREFIX}{waiting}")
    assert (redis_client.zscore(PENDING_ANSWER_INDEX_KEY, waiting) or 0) > kept_at


def test_the_same_message_twice_while_its_job_runs_calls_the_provider_once(
    pipeline: Pipeline,
) -> None:
    """Given a job whose provider call outlasts two leases, when its message is published
    again while it runs (before and after its first lease would have run out), then the
    duplicates are dropped without a provider call: the live worker renews its lease."""
    lease_s = 2
    with LLMTestServer(api_key=API_KEY, latency_ms=lease_s * 2500) as server:
        worker_env = openai_env(
            server, AGENTQUEUE_JOB_LEASE_S=str(lease_s), AGENTQUEUE_HTTP_TIMEOUT_S="30"
        )
        pipeline.start_worker(env=worker_env, concurrency=8)
        handle = pipeline.queue.submit(simple_job(7))
        for delay in (0.5, lease_s * 1.5 - 0.5):
            time.sleep(delay)
            pipeline.queue.celery.send_task(
                TASK_RUN_JOB,
                args=[handle.id, "support-bot", "gpt-4o-mini"],
                queue="agentqueue.normal",
            )
        result = handle.get(timeout=30)
        time.sleep(0.5)  # a late duplicate would call now

        assert result.status is JobStatus.SUCCEEDED
        assert result.attempts == 1
        assert len(server.arrivals) == 1


def _leave_crashed(pipeline: Pipeline, jobs: list[dict[str, object]]) -> list[str]:
    """Jobs as a worker SIGKILLed mid-call leaves them: claimed (lease expired long ago),
    reserved in the ledger, their message gone."""
    from agentqueue.budget.gate import AdmissionGroup, BudgetGate

    handles = pipeline.queue.submit_many(jobs, packed=False)
    ids = [h.id for h in handles]
    pipeline.queue.redis.delete("agentqueue.normal")  # the messages die with the worker
    gate = BudgetGate(pipeline.queue.sessions, pipeline.settings)
    with pipeline.queue.sessions() as session:
        payloads = session.scalars(select(JobRecord.payload).where(JobRecord.id.in_(ids))).all()
    group = AdmissionGroup([AgentJob.model_validate_json(p) for p in payloads], datetime.now(UTC))
    [admissions] = gate.admit_groups([group])
    assert {a.decision for a in admissions} == {"run"}
    past = datetime.now(UTC) - timedelta(minutes=5)
    with pipeline.queue.sessions.begin() as session:
        session.execute(
            JobRecord.__table__.update()
            .where(JobRecord.id.in_(ids))
            .values(
                status="running",
                attempts=1,
                started_at=past,
                lease_owner="dead-worker",
                lease_expires_at=past,
            )
        )
    return ids


def test_a_call_of_unknown_outcome_is_charged_and_only_repeatable_jobs_call_again(
    pipeline: Pipeline, llm_server: LLMTestServer
) -> None:
    """Given three jobs whose worker died after reserving (one with its answer journaled, one
    repeatable, one of an agent type that forbids repeats), when a live worker sweeps, then:
    the journaled one settles from its answer without a call; the repeatable one calls again
    and is charged that call plus the lost call's reservation, marked possibly repeated; the
    other fails with `call_outcome_unknown`, charged its reservation, without a call."""
    from agentqueue.cache.entry import CacheEntry
    from agentqueue.persistence import answers_repository
    from agentqueue.usage import TokenUsage

    journaled, repeatable, forbidden = _leave_crashed(
        pipeline,
        [
            simple_job(1),
            simple_job(2),
            simple_job(3, agent_type="payments-bot"),
        ],
    )
    answer = CacheEntry(
        output="the journaled answer",
        model="gpt-4o-mini",
        provider="openai",
        usage=TokenUsage(12, 5, 0),
        finish_reason="stop",
        created_at=datetime.now(UTC),
    )
    with pipeline.queue.sessions.begin() as session:
        answers_repository.write(
            session, {journaled: answer.to_json().decode()}, now=datetime.now(UTC)
        )

    pipeline.start_worker(
        env=openai_env(
            llm_server,
            AGENTQUEUE_JOB_LEASE_S=str(LEASE_S),
            AGENTQUEUE_NO_REPEAT_AGENT_TYPES="payments-bot",
        ),
        concurrency=8,
    )
    results = pipeline.queue.wait([journaled, repeatable, forbidden], timeout=30)

    with pipeline.queue.sessions() as session:
        entries = {e.job_id: e for e in session.scalars(select(LedgerEntryRecord)).all()}
        journal_left = session.scalar(select(func.count()).select_from(ProviderAnswerRecord))
    calls = calls_per_job(llm_server)
    # Journaled: settled from the answer, no new call, not marked.
    assert results[journaled].status is JobStatus.SUCCEEDED
    assert results[journaled].output == "the journaled answer"
    assert calls["question number 1"] == 0
    assert entries[journaled].state == "settled" and entries[journaled].possible_repeat_usd == 0
    assert entries[journaled].input_tokens == 12 and entries[journaled].output_tokens == 5
    assert journal_left == 0
    # A worker killed between a settlement and dropping its answers left them; a sweep drops
    # them within about two leases.
    assert _answers_left(pipeline, within_s=3 * LEASE_S) == []
    # Repeatable: one new call; charged the call plus the lost call's reservation.
    entry = entries[repeatable]
    assert results[repeatable].status is JobStatus.SUCCEEDED
    assert calls["question number 2"] == 1
    assert entry.state == "settled"
    assert entry.possible_repeat_usd == entry.reserved_usd > 0
    assert entry.cost_usd > entry.reserved_usd
    assert entry.charge_reason and "possibly_repeated" in entry.charge_reason
    assert Decimal(results[repeatable].cost_usd or "0") == entry.cost_usd
    # Repeats forbidden: no call, failed with a code, charged at the reservation.
    entry = entries[forbidden]
    assert results[forbidden].status is JobStatus.FAILED
    assert results[forbidden].error is not None
    assert results[forbidden].error.code == "call_outcome_unknown"
    assert calls["question number 3"] == 0
    assert entry.state == "settled" and entry.cost_usd == entry.reserved_usd > 0
    assert entry.possible_repeat_usd == entry.reserved_usd


def test_a_live_worker_sends_again_a_job_a_dead_one_held(pipeline: Pipeline) -> None:
    """Given a job left `running` under another worker's expired lease, when a worker runs
    (no beat), then it sends the job again within a few leases and the job succeeds."""
    handle_ids = _leave_crashed(pipeline, [simple_job(2)])
    started = time.monotonic()
    pipeline.start_worker(env={"AGENTQUEUE_JOB_LEASE_S": "2"}, concurrency=4)
    result = pipeline.queue.wait(handle_ids, timeout=20)[handle_ids[0]]

    assert result.status is JobStatus.SUCCEEDED and result.attempts == 2
    assert time.monotonic() - started < 20
