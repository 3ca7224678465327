"""P9: one job alone, submitted and waited for, against bare Celery's `apply_async().get()`.

Both sides run threads-pool workers (concurrency 32; agentqueue's default `agentqueue worker`
command, one process per CPU) on the same Redis; the provider is the
simulated one at zero latency. Each side sends `count` sequential requests, each waited for
before the next, and the median round trip counts.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from agentqueue.workers.process import WorkerProcess

QUEUE = "agentqueue.critical"


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def bare_round_trip_ms(env: dict[str, str], count: int, log_dir: Path) -> float:
    import roundtrip_app

    worker = WorkerProcess(
        env,
        name="roundtrip",
        app="roundtrip_app",
        concurrency=32,
        queues=[QUEUE],
        log_file=log_dir / "roundtrip.log",
    ).start()
    try:
        worker.wait_ready(roundtrip_app.app, timeout=60)
        samples = []
        for index in range(count + 5):
            started = time.perf_counter()
            roundtrip_app.echo.apply_async(args=(f"job-{index}",), queue=QUEUE).get(timeout=30)
            if index >= 5:  # the first few warm connections up
                samples.append(time.perf_counter() - started)
    finally:
        worker.stop()
    return _median_ms(samples)


def agentqueue_lone_job_ms(
    env: dict[str, str], count: int, log_dir: Path, *, app: str | None = None
) -> tuple[float, float]:
    """Medians of the whole round trip and of its `submit` call alone (the client's insert,
    commit and message), in ms. `app`: a bench app (`floor_app`) in one worker process with
    32 threads, on the critical queue, instead of the default `agentqueue worker` command."""
    from agentqueue.client import AgentQueue
    from agentqueue.jobs import JobStatus
    from agentqueue.settings import get_settings

    queue = AgentQueue(get_settings())
    if app is None:
        worker = WorkerProcess(  # the default `agentqueue worker` command: one process per CPU
            env,
            name="agentqueue-p9",
            concurrency=32,
            log_file=log_dir / "agentqueue-p9.log",
            processes="default",
        )
    else:
        worker = WorkerProcess(
            env,
            name=f"{app}-p9",
            app=app,
            concurrency=32,
            queues=[QUEUE],
            log_file=log_dir / f"{app}-p9.log",
        )
    worker.start()
    try:
        worker.wait_ready(queue.celery, timeout=60)
        samples, submits = [], []
        for index in range(count + 5):
            job = {
                "agent_type": "bench",
                "model": "gpt-4o-mini",
                "priority": "critical",
                "messages": [{"role": "user", "content": f"lone request {index}"}],
            }
            started = time.perf_counter()
            handle = queue.submit(job)
            submitted = time.perf_counter()
            result = handle.get(timeout=30)
            elapsed = time.perf_counter() - started
            assert result.status is JobStatus.SUCCEEDED, result.error
            if index >= 5:
                samples.append(elapsed)
                submits.append(submitted - started)
    finally:
        worker.stop()
        queue.close()
    return _median_ms(samples), _median_ms(submits)


def p9(env: dict[str, str], count: int, log_dir: Path, *, floor: bool = False) -> None:
    bare = bare_round_trip_ms(env, count, log_dir)
    ours, submit = agentqueue_lone_job_ms(env, count, log_dir)
    print(
        f"P9 lone job p50: {ours:.1f} ms, bare Celery round trip: {bare:.1f} ms, "
        f"ratio: {ours / bare:.1f}"
    )
    print(f"  of which the client's submit call: {submit:.1f} ms p50")
    if floor:
        least, least_submit = agentqueue_lone_job_ms(
            {**env, "AGENTQUEUE_BENCH_FLOOR": "results"}, count, log_dir, app="floor_app"
        )
        print(
            f"  floor, the same client calls on floor_app (aggregator, call and published "
            f"result; no SQL in the worker): {least:.1f} ms p50, ratio {least / bare:.1f}, "
            f"its submit call {least_submit:.1f} ms"
        )
