"""Jobs per second of agentqueue against bare Celery's no-op task, same Redis, pool and concurrency.

Each side preloads N messages on an idle worker's queue, then tells the worker to consume it
(`add_consumer`) and times until the queue and the unacked set are empty.

    python bench/throughput.py [--jobs 2000] [--concurrency 32] [--database postgres|sqlite]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import redis
from harness import REDIS_SERVER, apply_env, bench_env, drain_seconds, scratch_postgres

QUEUE = "agentqueue.normal"
IDLE_QUEUE = "agentqueue.critical"  # empty during the run; the worker idles on it


def _worker(env: dict[str, str], app: str, concurrency: int, log: Path):
    from agentqueue.workers.process import WorkerProcess

    return WorkerProcess(
        env,
        name=app.split(".")[-1],
        app=app,
        concurrency=concurrency,
        queues=[IDLE_QUEUE],
        log_file=log,
    ).start()


def bare_celery(env: dict[str, str], jobs: int, concurrency: int, log_dir: Path) -> float:
    import noop_app

    worker = _worker(env, "noop_app", concurrency, log_dir / "noop.log")
    try:
        worker.wait_ready(noop_app.app, timeout=60)
        with noop_app.app.producer_or_acquire() as producer:
            for index in range(jobs):
                noop_app.noop.apply_async(args=[f"job-{index}"], queue=QUEUE, producer=producer)
        client = redis.Redis.from_url(env["AGENTQUEUE_REDIS_URL"])
        seconds = drain_seconds(
            client,
            QUEUE,
            jobs,
            lambda: noop_app.app.control.add_consumer(
                QUEUE, destination=[worker.node_name], reply=True
            ),
        )
    finally:
        worker.stop()
    return jobs / seconds


def agentqueue_jobs(env: dict[str, str], jobs: int, concurrency: int, log_dir: Path) -> float:
    from agentqueue.client import AgentQueue
    from agentqueue.jobs import JobStatus
    from agentqueue.settings import get_settings

    queue = AgentQueue(get_settings())
    worker = _worker(env, "agentqueue.workers.app", concurrency, log_dir / "agentqueue.log")
    try:
        worker.wait_ready(queue.celery, timeout=60)
        handles = queue.submit_many(
            [
                {
                    "agent_type": "bench",
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"request {index}"}],
                }
                for index in range(jobs)
            ]
        )
        client = redis.Redis.from_url(env["AGENTQUEUE_REDIS_URL"])
        seconds = drain_seconds(
            client,
            QUEUE,
            jobs,
            lambda: queue.celery.control.add_consumer(
                QUEUE, destination=[worker.node_name], reply=True
            ),
        )
        results = queue.wait([h.id for h in handles], timeout=60)
        assert all(r.status is JobStatus.SUCCEEDED for r in results.values())
    finally:
        worker.stop()
        queue.close()
    return jobs / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--redis-db", type=int, default=8)
    args = parser.parse_args()

    redis_url = f"{REDIS_SERVER}/{args.redis_db}"
    with ExitStack() as stack:
        log_dir = Path(tempfile.mkdtemp(prefix="aqbench-"))
        if args.database == "postgres":
            database_url = stack.enter_context(scratch_postgres())
        else:
            database_url = f"sqlite:///{log_dir / 'bench.db'}"
        env = bench_env(redis_url, database_url, AGENTQUEUE_SIMULATED_LATENCY_MS="0")
        apply_env(env)
        from agentqueue.persistence.migrate import upgrade

        upgrade(database_url)
        redis.Redis.from_url(redis_url).flushdb()

        print(
            f"{args.jobs} jobs, threads pool, concurrency {args.concurrency}, "
            f"database {args.database}, same Redis for both"
        )
        started = time.perf_counter()
        baseline = bare_celery(env, args.jobs, args.concurrency, log_dir)
        print(f"bare Celery no-op task:          {baseline:8.0f} jobs/s")
        ours = agentqueue_jobs(env, args.jobs, args.concurrency, log_dir)
        print(f"agentqueue, simulated provider:  {ours:8.0f} jobs/s")
        print(f"ratio (agentqueue / bare Celery): {ours / baseline:.2f}")
        print(f"(benchmark took {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
