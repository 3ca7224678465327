"""The path of one job: submit -> Redis queue -> Celery worker -> recorded result."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import redis
from sqlalchemy import func, select

from agentqueue.jobs import JobStatus
from agentqueue.persistence.job_table import JobRecord
from tests.support.pipeline import Pipeline, simple_job


def test_a_job_runs_and_its_final_record_is_kept(pipeline: Pipeline) -> None:
    """Given a worker, when a job is submitted, then its result comes back and SQL keeps it."""
    pipeline.start_worker()
    handle = pipeline.queue.submit(simple_job(1, id="job-one"))

    result = handle.get(timeout=20)

    assert result.status is JobStatus.SUCCEEDED
    assert result.output and result.model == "gpt-4o-mini" and result.provider == "simulated"
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
    stored = pipeline.queue.status("job-one")
    assert stored.status is JobStatus.SUCCEEDED and stored.output == result.output
    assert stored.finished_at is not None and stored.attempts == 1


def test_same_id_submitted_twice_runs_once(pipeline: Pipeline) -> None:
    """Given a job id already submitted, when it is submitted again, it is not enqueued again."""
    first = pipeline.queue.submit(simple_job(2, id="dup-1"))
    second = pipeline.queue.submit(simple_job(2, id="dup-1"))
    queued = redis.Redis.from_url(pipeline.settings.redis_url).llen("agentqueue.normal")
    assert first.id == second.id == "dup-1"
    assert queued == 1

    pipeline.start_worker()
    assert first.get(timeout=20).attempts == 1
    assert pipeline.queue.submit(simple_job(2, id="dup-1")).get(timeout=5).attempts == 1


def test_a_queued_job_can_be_cancelled_and_never_runs(pipeline: Pipeline) -> None:
    """Given a job waiting in the queue, when cancelled, the worker skips it."""
    handle = pipeline.queue.submit(simple_job(3))
    assert handle.cancel() is True
    pipeline.start_worker()
    other = pipeline.queue.submit(simple_job(4))
    other.get(timeout=20)

    result = handle.get(timeout=5)
    assert result.status is JobStatus.CANCELLED
    assert result.output is None and result.started_at is None
    assert handle.cancel() is False


def test_submit_many_runs_every_job_on_each_priority_queue(pipeline: Pipeline) -> None:
    """Given jobs of all four priorities, all of them are consumed and succeed."""
    pipeline.start_worker()
    jobs = [
        simple_job(i, priority=p) for i, p in enumerate(["critical", "high", "normal", "low"] * 25)
    ]
    handles = pipeline.queue.submit_many(jobs)

    results = pipeline.queue.wait([h.id for h in handles], timeout=60)

    assert {r.status for r in results.values()} == {JobStatus.SUCCEEDED}
    assert {r.priority.value for r in results.values() if r.priority} == {
        "critical",
        "high",
        "normal",
        "low",
    }
    with pipeline.queue.sessions() as session:
        final = session.scalar(
            select(func.count()).select_from(JobRecord).where(JobRecord.finished_at.is_not(None))
        )
    assert final == 100


def test_a_pickle_message_is_refused_and_the_worker_keeps_serving(pipeline: Pipeline) -> None:
    """Given a pickle-serialized message on a queue, the worker rejects it and goes on."""
    pipeline.start_worker()
    pipeline.queue.celery.send_task(
        "agentqueue.run_job",
        args=["never-recorded"],
        queue="agentqueue.normal",
        serializer="pickle",
    )
    pipeline.queue.celery.send_task(
        "agentqueue.run_job",
        args=[{"not": "an id"}],
        queue="agentqueue.normal",
    )
    time.sleep(1)

    result = pipeline.queue.submit(simple_job(5)).get(timeout=20)

    assert result.status is JobStatus.SUCCEEDED
    assert pipeline.workers[0].process and pipeline.workers[0].process.poll() is None
    log = pipeline.worker_log()
    assert "pickle" in log.lower()


def test_celery_inspect_ping_answers(pipeline: Pipeline) -> None:
    """`celery -A agentqueue.workers.app inspect ping` reaches the worker."""
    worker = pipeline.start_worker()
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "agentqueue.workers.app",
            "inspect",
            "ping",
            "--destination",
            worker.node_name,
            "--timeout",
            "5",
        ],
        env=worker.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert "pong" in completed.stdout


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_pipeline_also_runs_on_sqlite(sqlite_pipeline: Pipeline, backend: str) -> None:
    """Given the embedded SQLite default, many concurrent jobs finish with one record each."""
    sqlite_pipeline.start_worker(concurrency=16)
    handles = sqlite_pipeline.queue.submit_many([simple_job(i) for i in range(200)])
    results = sqlite_pipeline.queue.wait([h.id for h in handles], timeout=60)
    assert len(results) == 200
    assert all(r.status is JobStatus.SUCCEEDED and r.attempts == 1 for r in results.values())
