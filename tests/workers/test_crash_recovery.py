"""A worker killed with SIGKILL mid-run loses nothing: its unacked jobs run again, once."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from agentqueue.constants import TASK_REDELIVER_STALE_JOBS
from agentqueue.jobs import JobStatus
from agentqueue.persistence.job_table import JobRecord
from agentqueue.persistence.ledger_tables import LedgerEntryRecord
from tests.support.pipeline import Pipeline, simple_job

VISIBILITY_TIMEOUT_S = 4


def _running(pipeline: Pipeline) -> list[str]:
    with pipeline.queue.sessions() as session:
        return list(
            session.scalars(select(JobRecord.id).where(JobRecord.status == JobStatus.RUNNING.value))
        )


def _finished(pipeline: Pipeline) -> int:
    with pipeline.queue.sessions() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(JobRecord)
                .where(JobRecord.status == JobStatus.SUCCEEDED.value)
            )
            or 0
        )


def test_sigkill_in_the_middle_of_1000_jobs_then_restart(pipeline: Pipeline) -> None:
    """Given 1,000 jobs and a worker killed with SIGKILL part-way, when a worker restarts,
    then all 1,000 end succeeded, each with exactly one final record."""
    env = {
        "AGENTQUEUE_SIMULATED_LATENCY_MS": "20",
        "AGENTQUEUE_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
    }
    handles = pipeline.queue.submit_many([simple_job(i) for i in range(1000)], packed=False)
    first = pipeline.start_worker(env=env, concurrency=16)
    deadline = time.monotonic() + 60
    while (_finished(pipeline) < 250 or not _running(pipeline)) and time.monotonic() < deadline:
        time.sleep(0.01)
    first.kill()
    done_at_kill = _finished(pipeline)
    assert 0 < done_at_kill < 1000, "the kill must land in the middle of the run"
    # What the dead worker held: messages it had taken and not acknowledged, and among their
    # jobs the ones it had claimed (still `running`, since nobody can finish them now).
    held_messages = pipeline.queue.redis.hlen("unacked")
    claimed = set(_running(pipeline))
    assert held_messages > 0, "the kill must land while the worker holds messages"

    time.sleep(VISIBILITY_TIMEOUT_S + 1)  # unacked messages become visible again
    pipeline.start_worker(env=env, concurrency=16, name="restarted")
    ids = [h.id for h in handles]
    # Redis can lose a message popped in the instant of the kill; beat's
    # redeliver_stale_jobs sends such jobs again from SQL. Run it as beat would, every few s.
    deadline = time.monotonic() + 120
    while _finished(pipeline) < len(ids) and time.monotonic() < deadline:
        time.sleep(3)
        pipeline.queue.celery.send_task(TASK_REDELIVER_STALE_JOBS, queue="agentqueue.critical")
    results = pipeline.queue.wait(ids, timeout=30)

    assert len(results) == 1000
    assert {r.status for r in results.values()} == {JobStatus.SUCCEEDED}
    with pipeline.queue.sessions() as session:
        rows = session.execute(
            select(JobRecord.id, JobRecord.status, JobRecord.attempts, JobRecord.finished_at)
        ).all()
    assert len(rows) == 1000 and len({r.id for r in rows}) == 1000
    assert all(r.status == "succeeded" and r.finished_at is not None for r in rows)
    # Jobs the dead worker had claimed ran again (attempts 2), the rest once.
    rerun = {r.id for r in rows if r.attempts > 1}
    assert claimed <= rerun, "every job claimed by the killed worker must have run again"
    assert all(r.attempts <= 2 for r in rows)
    # And each was charged once: one settled ledger entry per job.
    with pipeline.queue.sessions() as session:
        states = session.execute(select(LedgerEntryRecord.job_id, LedgerEntryRecord.state)).all()
    assert len(states) == 1000 and {s.state for s in states} == {"settled"}
