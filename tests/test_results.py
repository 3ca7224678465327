"""Waiting clients are woken by Redis when a result is published, not by polling."""

from __future__ import annotations

import threading
import time

from agentqueue.jobs import JobResult, JobStatus
from tests.support.pipeline import Pipeline, simple_job

# Far longer than a wake-up takes: a client that only noticed the result through SQL would
# take this long.
SQL_CHECK_INTERVAL_S = 30.0


def test_a_waiting_client_wakes_when_the_result_is_published(pipeline: Pipeline) -> None:
    """Given a client waiting for a queued job with SQL checks 30 s apart, when the result is
    published the way a worker publishes it, then the wait returns that result at once."""
    handle = pipeline.queue.submit(simple_job())
    returned: dict[str, JobResult] = {}
    waiter = threading.Thread(
        target=lambda: returned.update(
            pipeline.queue.wait([handle.id], timeout=60, sql_check_interval_s=SQL_CHECK_INTERVAL_S)
        )
    )
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive()
    published_at = time.monotonic()
    pipeline.queue.results.publish(
        [JobResult(job_id=handle.id, status=JobStatus.SUCCEEDED, output="done")]
    )
    waiter.join(timeout=SQL_CHECK_INTERVAL_S / 3)
    assert not waiter.is_alive()
    assert time.monotonic() - published_at < SQL_CHECK_INTERVAL_S / 3
    assert returned[handle.id].output == "done"


def test_every_client_waiting_for_one_job_wakes(pipeline: Pipeline) -> None:
    """Given three clients waiting for the same job, when its result is published, then all
    three return it (the wake-up token one of them takes is put back for the others)."""
    handle = pipeline.queue.submit(simple_job())
    outputs: list[str | None] = []
    lock = threading.Lock()

    def wait() -> None:
        result = pipeline.queue.wait(
            [handle.id], timeout=60, sql_check_interval_s=SQL_CHECK_INTERVAL_S
        )[handle.id]
        with lock:
            outputs.append(result.output)

    waiters = [threading.Thread(target=wait) for _ in range(3)]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.3)
    pipeline.queue.results.publish(
        [JobResult(job_id=handle.id, status=JobStatus.SUCCEEDED, output="done")]
    )
    for waiter in waiters:
        waiter.join(timeout=SQL_CHECK_INTERVAL_S / 3)
    assert outputs == ["done"] * 3
