"""`agentqueue worker` supervises its Celery processes: restarts, gives up, stops on SIGTERM."""

from __future__ import annotations

import logging
import signal
import sys
import time

import psutil
import pytest
from sqlalchemy import select

from agentqueue.jobs import JobStatus
from agentqueue.persistence.job_table import JobRecord
from agentqueue.workers.supervisor import EXIT_GAVE_UP, Supervisor, default_processes
from tests.support.pipeline import Pipeline, simple_job


def test_a_process_that_keeps_dying_is_restarted_with_backoff_then_given_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Given a child that always exits with status 3, then the supervisor restarts it with a
    doubling backoff, logs each restart, and gives up non-zero after `max_restarts`."""
    dying = [sys.executable, "-c", "import sys; sys.exit(3)"]
    supervisor = Supervisor([dying], max_restarts=3, backoff_base_s=0.1, backoff_max_s=1.0)
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="agentqueue.supervisor"):
        code = supervisor.run()

    assert code == EXIT_GAVE_UP != 0
    restarts = [r.getMessage() for r in caplog.records if "restarting it in" in r.getMessage()]
    assert len(restarts) == 3
    assert all("exited unexpectedly with code 3" in line for line in restarts)
    assert [line.split("restarting it in ")[1].split(" s")[0] for line in restarts] == [
        "0.1",
        "0.2",
        "0.4",
    ]
    assert "giving up" in caplog.records[-1].getMessage()
    assert time.monotonic() - started >= 0.7  # the backoff was really waited


def test_a_killed_worker_process_is_restarted_and_sigterm_stops_them_all(
    pipeline: Pipeline,
) -> None:
    """Given `agentqueue worker --processes 2`, when one Celery process is SIGKILLed, then the
    supervisor logs it and starts a new one that serves jobs; one SIGTERM to the supervisor
    stops every process and it exits 0."""
    worker = pipeline.start_worker(processes=2, concurrency=4)
    first = worker.children()
    assert len(first) == 2

    psutil.Process(first[0]).kill()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = worker.children()
        if len(now) == 2 and first[0] not in now:
            break
        time.sleep(0.2)
    now = worker.children()
    assert len(now) == 2 and first[0] not in now and first[1] in now
    assert "exited unexpectedly with signal SIGKILL; restarting it in" in pipeline.worker_log()
    handles = pipeline.queue.submit_many([simple_job(i) for i in range(20)], packed=False)
    results = pipeline.queue.wait([h.id for h in handles], timeout=30)
    assert {r.status for r in results.values()} == {JobStatus.SUCCEEDED}

    assert worker.process is not None
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(30) == 0
    assert not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in now
    )


def test_the_default_worker_command_runs_one_process_per_cpu_and_each_serves_jobs(
    pipeline: Pipeline,
) -> None:
    """Given `agentqueue worker` without `--processes`, then it runs one Celery process per
    CPU, every one answers over the broker, and jobs sent to the pool are done by more than
    one of them when there is more than one."""
    worker = pipeline.start_worker(processes="default", concurrency=4)
    assert len(worker.children()) == default_processes() == len(worker.node_names)
    replies = pipeline.queue.celery.control.ping(destination=worker.node_names, timeout=2)
    assert {node for reply in replies for node in reply} == set(worker.node_names)
    # `celery inspect stats`, which Flower shows, answers for each (its transport as a name).
    inspect = pipeline.queue.celery.control.inspect(destination=worker.node_names, timeout=5)
    stats = inspect.stats() or {}
    assert set(stats) == set(worker.node_names)
    assert {s["broker"]["transport"] for s in stats.values()} == {
        "agentqueue.workers.message_guard:GuardedTransport"
    }
    handles = pipeline.queue.submit_many([simple_job(i) for i in range(200)], packed=False)
    results = pipeline.queue.wait([h.id for h in handles], timeout=60)
    assert {r.status for r in results.values()} == {JobStatus.SUCCEEDED}
    with pipeline.queue.sessions() as session:
        owners = set(session.scalars(select(JobRecord.lease_owner)))
    # Each process holds its claims under its own lease owner (host, pid, nonce).
    assert min(default_processes(), 2) <= len(owners) <= default_processes(), owners
