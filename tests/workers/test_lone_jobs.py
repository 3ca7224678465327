"""Through a real worker: a lone job never waits for a batch, while preloaded jobs still group."""

from __future__ import annotations

import re
import time

from agentqueue.jobs import JobStatus
from tests.support.pipeline import Pipeline, simple_job

# Far longer than any job takes: a job that waited for its batch timeout would show it.
BATCH_TIMEOUT_MS = 20_000


def test_a_lone_job_does_not_wait_for_the_batch_timeout(pipeline: Pipeline) -> None:
    """Given a worker with a 20 s batch timeout and nothing else to do, when one normal job and
    then one critical job are submitted and waited for, then each is back long before 20 s."""
    pipeline.start_worker(
        env={
            "AGENTQUEUE_BATCH_TIMEOUT_MS": str(BATCH_TIMEOUT_MS),
            "AGENTQUEUE_BATCH_SIZE": "8",
        }
    )
    for index, priority in enumerate(("normal", "critical", "normal")):
        started = time.monotonic()
        result = pipeline.queue.submit(simple_job(index, priority=priority)).get(timeout=60)
        elapsed = time.monotonic() - started
        assert result.status is JobStatus.SUCCEEDED
        assert elapsed < BATCH_TIMEOUT_MS / 1000 / 4, f"{priority} job took {elapsed:.1f} s"


def test_preloaded_jobs_never_wait_for_company_that_cannot_come(pipeline: Pipeline) -> None:
    """Given 40 jobs of one key already on the queue when a worker with 4 threads, a 100 ms
    provider and a 20 s batch timeout starts (more messages than threads), when it takes them,
    then all succeed and no group waited for company: a job only waits for jobs that already
    hold a thread, so a group never sits out its timeout waiting for a prefetched message."""
    handles = [pipeline.queue.submit(simple_job(i)) for i in range(40)]
    pipeline.start_worker(
        env={
            "AGENTQUEUE_BATCH_TIMEOUT_MS": str(BATCH_TIMEOUT_MS),
            "AGENTQUEUE_BATCH_SIZE": "5",
            "AGENTQUEUE_SIMULATED_LATENCY_MS": "100",
        },
        concurrency=4,
        loglevel="INFO",
    )
    results = pipeline.queue.wait([h.id for h in handles], timeout=120)
    assert all(r.status is JobStatus.SUCCEEDED for r in results.values())
    flushes = re.findall(r"batch flushed .* size=(\d+) waited_ms=([\d.]+)", pipeline.worker_log())
    assert sum(int(size) for size, _ in flushes) == 40
    longest_wait_ms = max(float(waited) for _, waited in flushes)
    assert longest_wait_ms < BATCH_TIMEOUT_MS / 4, f"a group waited {longest_wait_ms:.0f} ms"
