"""No message can kill a worker: hostile queue items are acked, logged and never restored."""

from __future__ import annotations

import json
import time

import redis

from agentqueue.constants import TASK_RUN_BATCH
from agentqueue.jobs import JobStatus, parse_job, utcnow
from agentqueue.persistence import jobs_repository
from tests.support.hostile_messages import celery_message, hostile_items
from tests.support.pipeline import Pipeline, simple_job

QUEUE = "agentqueue.normal"


def _delivery_tag(item: str) -> str | None:
    try:
        raw = json.loads(item)
        return str(raw["properties"]["delivery_tag"])
    except (ValueError, TypeError, KeyError):
        return None


def _settled(client: redis.Redis, timeout: float = 10.0) -> tuple[int, int]:
    """Queue length and unacked count once the worker has nothing left in hand."""
    deadline = time.monotonic() + timeout
    while True:
        state = (int(client.llen(QUEUE)), int(client.hlen("unacked")))
        if state == (0, 0) or time.monotonic() >= deadline:
            return state
        time.sleep(0.1)


def test_every_hostile_message_is_rejected_and_the_worker_keeps_serving(
    pipeline: Pipeline, redis_url: str
) -> None:
    """Given one running worker, when each hostile item is pushed raw onto its queue, then the
    worker answers a real job right after it, without a restart, and the item is gone for good
    (not in the queue, not unacked), logged with its delivery tag."""
    worker = pipeline.start_worker(concurrency=4)
    client = redis.Redis.from_url(redis_url)
    for index, (name, item) in enumerate(hostile_items().items()):
        client.lpush(QUEUE, item)
        handle = pipeline.queue.submit(simple_job(index, metadata={"after": name}))
        result = handle.get(timeout=20)
        assert result.status == JobStatus.SUCCEEDED, name
        assert worker.process is not None and worker.process.poll() is None, name
        assert _settled(client) == (0, 0), name
        tag = _delivery_tag(item)
        if tag is not None:
            assert not client.hexists("unacked", tag), name
            # Logged with its delivery tag.
            assert f"(delivery tag {tag})" in pipeline.worker_log(), name
    log = pipeline.worker_log()
    assert "Unrecoverable error" not in log
    assert log.count("rejected a malformed message") >= len(hostile_items())
    rejected = [line for line in log.splitlines() if "rejected a malformed message" in line]
    assert len(rejected) >= len(hostile_items())
    client.close()


def test_the_timelimit_poison_message_does_not_come_back_after_a_restart(
    pipeline: Pipeline, redis_url: str
) -> None:
    """Given the `timelimit: "x"` message that used to loop, when a worker rejects it and a
    second worker starts afterwards, then the second one never sees it again."""
    client = redis.Redis.from_url(redis_url)
    client.lpush(QUEUE, json.dumps(celery_message(headers={"timelimit": "x"})))
    first = pipeline.start_worker(concurrency=2)
    assert pipeline.queue.submit(simple_job(1)).get(timeout=20).status == JobStatus.SUCCEEDED
    assert first.stop(timeout=20) == 0
    second = pipeline.start_worker(concurrency=2, name="second")
    assert pipeline.queue.submit(simple_job(2)).get(timeout=20).status == JobStatus.SUCCEEDED
    assert second.process is not None and second.process.poll() is None
    assert _settled(client) == (0, 0)
    assert "invalid timelimit" not in pipeline.worker_log(1)
    client.close()


def test_run_batch_with_an_unknown_service_tier_is_refused_and_the_job_not_left_running(
    pipeline: Pipeline,
) -> None:
    """Given a queued job, when a run_batch message names it with an unknown service tier, the
    message is refused with `unknown_service_tier` and the job is untouched; a valid run_batch
    for the same job then runs it."""
    job = parse_job(simple_job(7), max_bytes=100_000)
    with pipeline.queue.sessions.begin() as session:
        jobs_repository.insert_new(session, [job], status=JobStatus.QUEUED, now=utcnow())
    pipeline.start_worker(concurrency=2)
    celery = pipeline.queue.celery
    celery.send_task(
        TASK_RUN_BATCH, args=[[job.id], job.agent_type, job.model, "turbo", False], queue=QUEUE
    )
    deadline = time.monotonic() + 20
    while "unknown_service_tier" not in pipeline.worker_log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "unknown_service_tier" in pipeline.worker_log()
    assert pipeline.queue.status(job.id).status == JobStatus.QUEUED

    celery.send_task(
        TASK_RUN_BATCH, args=[[job.id], job.agent_type, job.model, "standard", False], queue=QUEUE
    )
    assert pipeline.queue.wait([job.id], timeout=20)[job.id].status == JobStatus.SUCCEEDED


def test_the_guarded_channel_shares_one_redis_client_per_pool_and_it_works(
    redis_url: str,
) -> None:
    # kombu builds a redis.Redis per ack, publish and event; the guarded channel keeps one per
    # connection pool (clients are safe to share between threads: each command borrows a
    # pooled connection), and builds a new one when the channel gets a new pool.
    from kombu import Connection

    from agentqueue.workers.message_guard import GuardedChannel

    with Connection(
        redis_url, transport="agentqueue.workers.message_guard:GuardedTransport"
    ) as conn:
        channel = conn.channel()
        assert isinstance(channel, GuardedChannel)
        first = channel._create_client()
        with channel.conn_or_acquire() as again:
            assert again is first
        assert first.connection_pool is channel.pool
        queue = conn.SimpleQueue("agentqueue.test.shared-client")
        queue.put({"n": 1})
        message = queue.get(timeout=5)
        message.ack()
        assert message.payload == {"n": 1}
        queue.close()
        channel._pool = None  # what closing the channel's pool does: the next client is new
        renewed = channel._create_client()
        assert renewed is not first and renewed.connection_pool is channel.pool
