"""The memory guard: soft limit frees memory, hard limit leaves without losing the jobs in hand."""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from agentqueue.jobs import JobStatus
from agentqueue.workers.memory_guard import MIB, MemoryGuard
from tests.support.pipeline import Pipeline, running_pipeline, simple_job


def test_soft_limit_collects_and_shrinks_hard_limit_triggers_once() -> None:
    """Given readings that climb past soft then hard, each limit acts as described."""
    readings = iter([50 * MIB, 85 * MIB, 120 * MIB, 130 * MIB])
    shrunk: list[float] = []
    exits: list[bool] = []
    guard = MemoryGuard(
        hard_limit_bytes=100 * MIB,
        soft_limit_bytes=80 * MIB,
        read_rss=lambda: next(readings),
        on_soft=[shrunk.append],
        on_hard=lambda: exits.append(True),
    )

    assert [guard.check() for _ in range(4)] == ["ok", "soft", "hard", "hard"]
    assert len(shrunk) == 1 and 0 < shrunk[0] <= 1
    assert exits == [True]  # asked to leave once, not on every sample


def test_a_worker_over_its_hard_limit_finishes_its_jobs_and_exits(
    redis_url: str, postgres_url: str, tmp_path: Path
) -> None:
    """Given a worker whose hard limit sits just above its idle size, when jobs with large
    payloads arrive, it stops, exits by itself, and every job still ends with one record."""
    with running_pipeline(redis_url, postgres_url, tmp_path, max_job_bytes=str(8 * MIB)) as p:
        _hard_limit_scenario(p)


def _hard_limit_scenario(pipeline: Pipeline) -> None:
    probe = pipeline.start_worker(name="probe")
    assert probe.process is not None
    idle_mb = psutil.Process(probe.process.pid).memory_info().rss // MIB
    probe.stop()

    env = {
        "AGENTQUEUE_WORKER_MAX_MEMORY_MB": str(idle_mb + 40),
        "AGENTQUEUE_WORKER_MEMORY_CHECK_S": "0.2",
        "AGENTQUEUE_SIMULATED_LATENCY_MS": "1500",
    }
    big = "lorem ipsum dolor sit amet " * 70_000  # ~1.9 MB of text per job
    handles = [
        pipeline.queue.submit_many(
            [simple_job(i, messages=[{"role": "user", "content": f"{i} {big}"}])], packed=False
        )[0]
        for i in range(60)
    ]
    guarded = pipeline.start_worker(name="guarded", env=env, concurrency=32, wait=False)
    assert guarded.process is not None

    deadline = time.monotonic() + 90
    while guarded.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert guarded.process.poll() is not None, "the worker should have left on its own"
    assert "memory hard limit" in pipeline.worker_log(1)

    pipeline.start_worker(name="replacement")
    results = pipeline.queue.wait([h.id for h in handles], timeout=120)
    assert {r.status for r in results.values()} == {JobStatus.SUCCEEDED}
    assert all(r.attempts >= 1 for r in results.values())
