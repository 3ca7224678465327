"""CPU time per job of P1's single-message load: the worker processes, PostgreSQL and Redis.

Throughput on this 2-core machine drifts by 10-20% between neighbouring runs; the CPU seconds a
job costs move less, so this is the figure to compare trees by. It preloads `--jobs` single
messages (as P1 interactive does), runs the default `agentqueue worker` command (one process
per CPU, `--concurrency` threads each) or, with `--bare`, bare Celery's no-op task on one
threads-pool worker, and reads the CPU time of the worker processes and of every `postgres` and
`redis-server` process before and after the drain. `--packed`: the same jobs as packed batch
tasks (`submit_many`, P1 bulk). `--trace`: the agentqueue workers' steps traced as by
`phases.py` (which costs a few microseconds a call), and its table printed after the figures.

    .venv/bin/python bench/worker_cpu.py [--jobs 5000] [--concurrency 32] [--bare | --packed]
        [--redis-db 8] [--trace]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import phases
import psutil
import redis
from harness import (
    QUEUE,
    REDIS_SERVER,
    apply_env,
    bench_env,
    bench_jobs,
    drain_seconds,
    idle_worker,
    scratch_postgres,
)

SERVICES = ("postgres", "redis-server")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of one process."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def service_seconds() -> dict[str, float]:
    """CPU seconds of every process of each service, by service name."""
    totals = dict.fromkeys(SERVICES, 0.0)
    for process in psutil.process_iter(["name", "cpu_times"]):
        name, times = process.info["name"], process.info["cpu_times"]
        if name in totals and times is not None:  # None: it ended meanwhile
            totals[name] += times.user + times.system
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--bare", action="store_true", help="bare Celery's no-op task instead")
    parser.add_argument("--packed", action="store_true", help="packed batch tasks (P1 bulk)")
    parser.add_argument("--redis-db", type=int, default=8)
    parser.add_argument("--trace", action="store_true", help="trace the workers' steps")
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="aqcpu-"))
    trace_dir = log_dir / "trace"

    with scratch_postgres() as database_url:
        redis_url = f"{REDIS_SERVER}/{args.redis_db}"
        env = bench_env(redis_url, database_url, AGENTQUEUE_SIMULATED_LATENCY_MS="0")
        if args.trace:
            trace_dir.mkdir()
            phases.trace_workers(env, trace_dir)
        apply_env(env)
        from agentqueue.client import AgentQueue
        from agentqueue.persistence.migrate import upgrade
        from agentqueue.settings import get_settings

        upgrade(database_url)
        client = redis.Redis.from_url(redis_url)
        client.flushdb()
        queue = AgentQueue(get_settings())
        if args.bare:
            import noop_app

            app = noop_app.app
            worker = idle_worker(env, "noop_app", args.concurrency, log_dir / "noop.log")
            worker.wait_ready(app, timeout=60)
            with app.producer_or_acquire() as producer:
                for index in range(args.jobs):
                    noop_app.noop.apply_async(
                        args=(f"job-{index}",), queue=QUEUE, producer=producer
                    )
            assert worker.process is not None
            pids = [worker.process.pid]
            nodes = [worker.node_name]
        else:
            app = queue.celery
            worker = idle_worker(
                env,
                "agentqueue.workers.app",
                args.concurrency,
                log_dir / "agentqueue.log",
                processes="default",
            )
            worker.wait_ready(app, timeout=60)
            queue.submit_many(bench_jobs(args.jobs), packed=args.packed)
            pids = worker.children()
            nodes = worker.node_names
        try:
            before = sum(cpu_seconds(pid) for pid in pids)
            services_before = service_seconds()
            seconds = drain_seconds(
                client,
                QUEUE,
                client.llen(QUEUE),  # one message per job, or per packed batch
                lambda: app.control.add_consumer(QUEUE, destination=nodes, reply=True),
            )
            used = sum(cpu_seconds(pid) for pid in pids) - before
            services = {
                name: value - services_before[name] for name, value in service_seconds().items()
            }
        finally:
            worker.stop()
            queue.close()
    per_job = {name: 1000 * value / args.jobs for name, value in services.items()}
    load = (
        "bare Celery no-op"
        if args.bare
        else "agentqueue " + ("bulk" if args.packed else "interactive")
    )
    print(
        f"{load}: "
        f"{args.jobs / seconds:.0f} jobs/s; CPU ms per job: worker processes "
        f"{1000 * used / args.jobs:.2f}, postgres {per_job['postgres']:.2f}, "
        f"redis {per_job['redis-server']:.2f}"
    )
    if args.trace:
        phases.report(trace_dir)


if __name__ == "__main__":
    main()
