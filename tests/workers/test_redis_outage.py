"""Redis outages lose nothing: jobs whose message vanished are sent again from SQL.

Each test breaks a private redis-server (never the shared one) under a supervised worker
(`agentqueue worker`) while jobs run: killed with SIGKILL (its queues are gone) or shut down
(snapshot kept), then started again on the same port.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from agentqueue.jobs import JobStatus
from agentqueue.persistence.job_table import JobRecord
from agentqueue.persistence.ledger_tables import LedgerEntryRecord
from tests.support.pipeline import Pipeline, running_pipeline, simple_job
from tests.support.private_redis import PrivateRedis

JOBS = 600
BACK_WITHIN_S = 60


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def outage_pipeline(
    private_redis: PrivateRedis, postgres_url: str, tmp_path: Path
) -> Iterator[Pipeline]:
    with running_pipeline(
        private_redis.url(),
        postgres_url,
        tmp_path,
        simulated_latency_ms="40",
        job_lease_s="4",
    ) as running:
        yield running


def _counts(pipeline: Pipeline) -> dict[str, int]:
    with pipeline.queue.sessions() as session:
        rows = session.execute(
            select(JobRecord.status, func.count()).group_by(JobRecord.status)
        ).all()
    return {status: int(n) for status, n in rows}


@pytest.mark.parametrize("outage", ["kill", "shutdown"])
def test_redis_outage_mid_run_loses_no_job(
    outage_pipeline: Pipeline, private_redis: PrivateRedis, outage: str
) -> None:
    """Given 600 jobs running on a supervised worker, when Redis is killed (or shut down)
    part-way and started again 2 s later, then every job succeeds within 60 s of Redis
    returning, each charged once, and the worker (supervisor and Celery process) is alive."""
    pipeline = outage_pipeline
    handles = pipeline.queue.submit_many(
        [simple_job(i, id=f"{outage}-{i}") for i in range(JOBS)], packed=False
    )
    worker = pipeline.start_worker(concurrency=16, processes=1, loglevel="INFO")
    deadline = time.monotonic() + 60
    while _counts(pipeline).get("succeeded", 0) < JOBS // 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _counts(pipeline).get("succeeded", 0) < JOBS, "the outage must land mid-run"

    private_redis.kill() if outage == "kill" else private_redis.shutdown()
    time.sleep(2)
    private_redis.start()
    back = datetime.now(UTC)

    deadline = time.monotonic() + BACK_WITHIN_S + 5
    while _counts(pipeline).get("succeeded", 0) < JOBS and time.monotonic() < deadline:
        time.sleep(0.5)

    counts = _counts(pipeline)
    assert counts == {"succeeded": JOBS}, counts
    with pipeline.queue.sessions() as session:
        last = session.scalar(select(func.max(JobRecord.finished_at)))
        states = session.scalars(select(LedgerEntryRecord.state)).all()
    assert last is not None and last <= back + timedelta(seconds=BACK_WITHIN_S)
    assert len(states) == JOBS and set(states) == {"settled"}
    results = pipeline.queue.wait([h.id for h in handles], timeout=30)
    assert {r.status for r in results.values()} == {JobStatus.SUCCEEDED}
    # No worker process left dead: the supervisor runs, with a Celery worker that answers.
    assert worker.process is not None and worker.process.poll() is None
    assert len(worker.children()) == 1
    worker.wait_ready(pipeline.queue.celery, timeout=30)
    took = (last - back).total_seconds()
    print(f"\nredis {outage}: all {JOBS} jobs done {took:.1f} s after Redis returned")
