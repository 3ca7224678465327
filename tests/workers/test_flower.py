"""Flower, started against the same broker, lists the worker and the jobs by task name."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from agentqueue.constants import TASK_RUN_JOB
from agentqueue.jobs import JobStatus
from tests.support.pipeline import Pipeline, simple_job
from tests.support.services import free_port

AUTH = ("operator", "s3cret-pass")


@pytest.fixture
def flower(pipeline: Pipeline) -> Iterator[str]:
    port = free_port()
    log = open(pipeline.log_dir / "flower.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "agentqueue.workers.app",
            "flower",
            f"--port={port}",
            "--address=127.0.0.1",
            f"--basic-auth={AUTH[0]}:{AUTH[1]}",
        ],
        env={**os.environ, **pipeline.env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthcheck", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def test_flower_lists_the_worker_and_jobs_by_task_name(pipeline: Pipeline, flower: str) -> None:
    """Given Flower and a worker on one broker, when jobs run, Flower's API shows both."""
    worker = pipeline.start_worker()
    handles = [pipeline.queue.submit(simple_job(i)) for i in range(5)]
    pipeline.queue.wait([h.id for h in handles], timeout=30)

    assert httpx.get(f"{flower}/api/workers", timeout=5).status_code == 401
    tasks: dict[str, dict[str, object]] = {}
    workers: dict[str, object] = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        workers = httpx.get(f"{flower}/api/workers?refresh=1", auth=AUTH, timeout=10).json()
        tasks = httpx.get(f"{flower}/api/tasks", auth=AUTH, timeout=10).json()
        if worker.node_name in workers and all(h.id in tasks for h in handles):
            break
        time.sleep(0.5)

    assert worker.node_name in workers
    for handle in handles:
        assert tasks[handle.id]["name"] == TASK_RUN_JOB
        assert tasks[handle.id]["state"] == "SUCCESS"


def test_a_failed_job_ends_its_task_in_failure_in_flower(pipeline: Pipeline, flower: str) -> None:
    """Given a provider that always fails and no retries left, when a job ends `failed`, then
    its run_job task is FAILURE in Flower (after the final record), and it is not retried."""
    pipeline.start_worker(
        env={
            "AGENTQUEUE_SIMULATED_FAILURE_RATE": "1",
            "AGENTQUEUE_JOB_MAX_RETRIES": "0",
            "AGENTQUEUE_PROVIDER_MAX_ATTEMPTS": "1",
        }
    )
    handle = pipeline.queue.submit(simple_job(99))
    result = handle.get(timeout=30)
    assert result.status == JobStatus.FAILED

    state = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        tasks = httpx.get(f"{flower}/api/tasks", auth=AUTH, timeout=10).json()
        state = tasks.get(handle.id, {}).get("state")
        if state in ("FAILURE", "SUCCESS"):
            break
        time.sleep(0.5)
    assert state == "FAILURE"
    failed = httpx.get(f"{flower}/api/tasks?state=FAILURE", auth=AUTH, timeout=10).json()
    assert handle.id in failed
    # Recorded once, never retried: one attempt, and the final record still says failed.
    final = pipeline.queue.status(handle.id)
    assert final.status == JobStatus.FAILED and final.attempts == 1
    assert "Traceback" not in pipeline.worker_log()
