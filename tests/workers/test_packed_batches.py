"""Packed batch tasks: bulk work travels as a few messages of one `(agent_type, model)` each,
and a chunk whose worker dies mid-run is redelivered and finishes each job exactly once."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from agentqueue.constants import TASK_RUN_BATCH
from agentqueue.jobs import JobStatus
from agentqueue.persistence.job_table import JobRecord
from agentqueue.testing.llm_server import LLMTestServer
from tests.support.pipeline import Pipeline, running_pipeline, simple_job

PACKED_BATCH_SIZE = 10
VISIBILITY_TIMEOUT_S = 4


@pytest.fixture
def packing_pipeline(redis_url: str, postgres_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    """agentqueue on PostgreSQL whose client packs bulk work in chunks of PACKED_BATCH_SIZE."""
    with running_pipeline(
        redis_url, postgres_url, tmp_path, packed_batch_size=str(PACKED_BATCH_SIZE)
    ) as running:
        yield running


def queued_messages(redis_url: str, queue: str) -> list[dict[str, Any]]:
    """The Celery messages waiting on `queue`: task name and decoded args of each."""
    client = redis.Redis.from_url(redis_url)
    try:
        raw = client.lrange(queue, 0, -1)
    finally:
        client.close()
    messages = []
    for item in raw:
        envelope = json.loads(item)
        args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        messages.append({"task": envelope["headers"]["task"], "args": args})
    return messages


def _count(pipeline: Pipeline, status: JobStatus) -> int:
    with pipeline.queue.sessions() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(JobRecord).where(JobRecord.status == status.value)
            )
            or 0
        )


def test_submit_many_sends_chunks_of_one_agent_type_and_model(packing_pipeline: Pipeline) -> None:
    """Given 75 jobs over three (agent_type, model, priority) groups, when submitted with
    `submit_many`, then they wait as 9 run_batch messages (10 + 10 + 5 per group) each holding
    one group on its priority's queue, and a worker runs every job once."""
    groups = {
        ("support-bot", "gpt-4o-mini", "normal"): 25,
        ("triage", "gpt-4o-mini", "normal"): 25,
        ("support-bot", "claude-3-5-haiku", "high"): 25,
    }
    jobs = [
        simple_job(1000 * g + i, agent_type=agent_type, model=model, priority=priority)
        for g, ((agent_type, model, priority), count) in enumerate(groups.items())
        for i in range(count)
    ]
    group_of = {
        job_id: (job["agent_type"], job["model"], job["priority"])
        for job, job_id in zip(
            jobs, [h.id for h in packing_pipeline.queue.submit_many(jobs)], strict=True
        )
    }

    redis_url = packing_pipeline.settings.redis_url
    sent: Counter[str] = Counter()
    chunks_per_group: Counter[tuple[str, str, str]] = Counter()
    for priority in ("normal", "high"):
        for message in queued_messages(redis_url, f"agentqueue.{priority}"):
            assert message["task"] == TASK_RUN_BATCH
            ids, agent_type, model = message["args"][:3]
            assert 1 <= len(ids) <= PACKED_BATCH_SIZE
            assert {group_of[i] for i in ids} == {(agent_type, model, priority)}
            sent.update(ids)
            chunks_per_group[(agent_type, model, priority)] += 1
    assert set(sent) == set(group_of) and set(sent.values()) == {1}
    assert chunks_per_group == dict.fromkeys(groups, 3)

    packing_pipeline.start_worker()
    results = packing_pipeline.queue.wait(list(group_of), timeout=60)
    assert {r.status for r in results.values()} == {JobStatus.SUCCEEDED}
    assert all(r.attempts == 1 for r in results.values())
    assert {(r.agent_type, r.model, r.priority) for r in results.values()} == set(groups)


def test_a_packed_batch_killed_mid_run_is_redelivered_and_each_job_finishes_once(
    packing_pipeline: Pipeline,
) -> None:
    """Given three packed batch tasks of ten jobs and a worker running two at a time against
    an LLM server answering in 1.2 s, when the worker is SIGKILLed while the third chunk's
    calls are in flight, then that chunk is redelivered to a new worker, its ten jobs run
    again once, the twenty already finished are not called again, and every job ends with
    exactly one final record (status succeeded, one row each)."""
    with LLMTestServer(latency_ms=1200) as server:
        env = {
            "AGENTQUEUE_PROVIDER": "openai",
            "AGENTQUEUE_OPENAI_BASE_URL": server.base_url,
            "AGENTQUEUE_OPENAI_API_KEY": "sk-packed-test",
            "AGENTQUEUE_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
        }
        handles = packing_pipeline.queue.submit_many([simple_job(i) for i in range(30)])
        queued = queued_messages(packing_pipeline.settings.redis_url, "agentqueue.normal")
        assert len(queued) == 3

        first = packing_pipeline.start_worker(env=env, concurrency=2)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (
                _count(packing_pipeline, JobStatus.SUCCEEDED) == 20
                and server.counters.in_flight == 10
            ):
                break
            time.sleep(0.02)
        first.kill()
        assert _count(packing_pipeline, JobStatus.SUCCEEDED) == 20, "kill must land mid-run"
        assert _count(packing_pipeline, JobStatus.RUNNING) == 10
        assert server.requests_received == 30

        time.sleep(VISIBILITY_TIMEOUT_S + 1)  # the unacked chunk becomes visible again
        packing_pipeline.start_worker(env=env, concurrency=2, name="restarted")
        results = packing_pipeline.queue.wait([h.id for h in handles], timeout=60)

        # Only the redelivered chunk's ten jobs called the provider again.
        assert server.requests_received == 40

    assert {r.status for r in results.values()} == {JobStatus.SUCCEEDED}
    with packing_pipeline.queue.sessions() as session:
        rows = session.execute(
            select(JobRecord.id, JobRecord.status, JobRecord.attempts, JobRecord.finished_at)
        ).all()
    assert len(rows) == 30 and {r.id for r in rows} == {h.id for h in handles}
    assert all(r.status == "succeeded" and r.finished_at is not None for r in rows)
    assert sorted(Counter(r.attempts for r in rows).items()) == [(1, 20), (2, 10)]
