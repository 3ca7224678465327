"""`submit_many` cannot half-fail: when Redis fails part-way, what went out stays recorded and
resubmitting the same jobs never makes a second runnable copy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from agentqueue.client import BrokerUnavailable
from agentqueue.jobs import JobStatus
from agentqueue.persistence.job_table import JobRecord
from agentqueue.persistence.ledger_tables import LedgerEntryRecord
from tests.support.pipeline import Pipeline, running_pipeline, simple_job
from tests.support.private_redis import PrivateRedis

QUEUE = "agentqueue.normal"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def private_pipeline(
    private_redis: PrivateRedis, postgres_url: str, tmp_path: Path
) -> Iterator[Pipeline]:
    with running_pipeline(private_redis.url(), postgres_url, tmp_path) as running:
        yield running


def test_a_broker_error_mid_submit_keeps_what_went_out_and_a_resubmission_runs_each_once(
    private_pipeline: Pipeline, private_redis: PrivateRedis
) -> None:
    """Given Redis that runs out of memory part-way through a 300-job `submit_many`, then
    the error lists the jobs that went out and only they stay recorded; resubmitting all 300
    sends just the missing ones, and a worker runs every job exactly once."""
    queue = private_pipeline.queue
    jobs = [simple_job(i, id=f"job-{i}") for i in range(300)]
    admin = private_redis.client()
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", str(used + 200_000))  # room for some of the messages

    with pytest.raises(BrokerUnavailable) as refused:
        queue.submit_many(jobs, packed=False)

    enqueued = refused.value.enqueued
    assert 0 < len(enqueued) < 300
    assert refused.value.code == "broker_unavailable"
    with queue.sessions() as session:
        recorded = set(session.scalars(select(JobRecord.id)))
    assert recorded == set(enqueued)
    assert admin.llen(QUEUE) == len(enqueued)

    admin.config_set("maxmemory", "0")
    handles = queue.submit_many(jobs, packed=False)
    assert admin.llen(QUEUE) == 300  # one message per job, not a second for the enqueued

    private_pipeline.start_worker(concurrency=16)
    results = queue.wait([h.id for h in handles], timeout=60)
    assert {r.status for r in results.values()} == {JobStatus.SUCCEEDED}
    assert {r.attempts for r in results.values()} == {1}
    with queue.sessions() as session:
        states = session.scalars(select(LedgerEntryRecord.state)).all()
    assert len(states) == 300 and set(states) == {"settled"}
