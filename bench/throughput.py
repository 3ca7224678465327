"""Jobs per second of agentqueue against bare Celery's no-op task, same Redis, pool and concurrency.

Each side preloads its messages on an idle worker's queue, then tells the worker to consume it
(`add_consumer`) and times until the queue and the unacked set are empty. The preloaded list is
set aside until every worker process consumes the queue, then put back at once (see
`harness.drain_seconds`). The clock starts when the first message leaves the queue
(`--clock command`: when the messages are put back).

P1 (simulated provider, zero latency) compares, in the same run, bare Celery's no-op task with
agentqueue jobs sent one message per job, grouped by the in-worker aggregator (`P1 interactive
ratio`), and the same jobs sent by `submit_many` -- the bulk API, which packs them into batch
tasks (`P1 bulk ratio`). With `--rounds N` each side runs N
times, interleaved, and the best run of each counts.

P2 runs the local OpenAI-compatible test server (a subprocess) at `--latency-ms` and, for each
concurrency C, one worker with C threads and a provider pool of C connections; it prints the
jobs/s achieved as a share of the ceiling C / latency (`P2 C=64: Z% of ceiling`). Each C gets
enough single-message jobs for about `--p2-seconds` at the ceiling.

P9 sends `--p9-jobs` (50) critical jobs one at a time, each submitted and waited for through the
client API, against bare Celery's `apply_async().get()` with a Redis result backend, and prints
the medians (`P9 lone job p50: A ms, bare Celery round trip: B ms, ratio: R`).

    python bench/throughput.py [--only p1|p2|p9] [--jobs 2000] [--concurrency 32] [--rounds 2]
        [--p2-concurrency 16,64,128] [--p2-seconds 5] [--latency-ms 200]
        [--database postgres|sqlite] [--redis-db 8] [--clock first-take|command] [--floor]

`--floor` adds floor_app's runs: the same messages through the same aggregator, with the batch
executor's work left out (P1), reduced to the provider calls (P2), or to the call and the
published result (P9, the same client API calls), to show what the rest of the path costs.
"""

from __future__ import annotations

import argparse
import importlib
import math
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import redis
from harness import (
    QUEUE,
    REDIS_SERVER,
    LLMServerProcess,
    apply_env,
    bench_env,
    bench_jobs,
    drain_seconds,
    idle_worker,
    scratch_postgres,
)

from agentqueue.constants import TASK_RUN_JOB


def cpu_count() -> int:
    from agentqueue.workers.supervisor import default_processes

    return default_processes()


def preloaded_task_rate(
    env: dict[str, str],
    app_module: str,
    task_name: str,
    args_of: Callable[[int], tuple[str, ...]],
    jobs: int,
    concurrency: int,
    log: Path,
    *,
    first_take: bool = True,
    pool: str | None = None,
) -> float:
    """Jobs/s of a worker of `app_module` draining `jobs` preloaded messages of one task."""
    module = importlib.import_module(app_module)
    worker = idle_worker(env, app_module, concurrency, log, pool=pool)
    try:
        worker.wait_ready(module.app, timeout=60)
        task = module.app.tasks[task_name]
        with module.app.producer_or_acquire() as producer:
            for index in range(jobs):
                task.apply_async(args=args_of(index), queue=QUEUE, producer=producer)
        client = redis.Redis.from_url(env["AGENTQUEUE_REDIS_URL"])
        seconds = drain_seconds(
            client,
            QUEUE,
            jobs,
            lambda: module.app.control.add_consumer(
                QUEUE, destination=[worker.node_name], reply=True
            ),
            from_first_take=first_take,
        )
    finally:
        worker.stop()
    return jobs / seconds


def bare_celery(
    env: dict[str, str],
    jobs: int,
    concurrency: int,
    log_dir: Path,
    *,
    first_take: bool = True,
    pool: str | None = None,
) -> float:
    """Bare Celery's no-op task: threads pool with `concurrency`, or `pool="prefork"` with
    one child per CPU."""
    return preloaded_task_rate(
        env,
        "noop_app",
        "bench.noop",
        lambda index: (f"job-{index}",),
        jobs,
        cpu_count() if pool == "prefork" else concurrency,
        log_dir / f"noop-{pool or 'threads'}.log",
        first_take=first_take,
        pool=pool,
    )


def agentqueue_jobs(
    env: dict[str, str],
    jobs: int,
    concurrency: int,
    log_dir: Path,
    *,
    packed: bool = False,
    log_name: str = "agentqueue.log",
    first_take: bool = True,
) -> float:
    """Jobs/s of `jobs` preloaded jobs: single messages (the aggregator) or packed batch tasks,
    on the default `agentqueue worker` command (one process per CPU) with `concurrency`
    threads each."""
    from agentqueue.client import AgentQueue
    from agentqueue.jobs import JobStatus
    from agentqueue.settings import get_settings

    settings = get_settings()
    queue = AgentQueue(settings)
    worker = idle_worker(
        env, "agentqueue.workers.app", concurrency, log_dir / log_name, processes="default"
    )
    try:
        worker.wait_ready(queue.celery, timeout=60)
        handles = queue.submit_many(
            bench_jobs(jobs),
            packed=packed,
        )
        messages = math.ceil(jobs / settings.packed_batch_size) if packed else jobs
        client = redis.Redis.from_url(env["AGENTQUEUE_REDIS_URL"])
        seconds = drain_seconds(
            client,
            QUEUE,
            messages,
            lambda: queue.celery.control.add_consumer(
                QUEUE, destination=worker.node_names, reply=True
            ),
            from_first_take=first_take,
        )
        results = queue.wait([h.id for h in handles], timeout=60)
        failed = [r for r in results.values() if r.status is not JobStatus.SUCCEEDED]
        assert not failed, f"{len(failed)} job(s) did not succeed, first: {failed[0].error}"
    finally:
        worker.stop()
        queue.close()
    return jobs / seconds


def floor_jobs(
    env: dict[str, str],
    jobs: int,
    concurrency: int,
    log_dir: Path,
    *,
    mode: str,
    log_name: str,
    first_take: bool = True,
) -> float:
    """Jobs/s of `floor_app`: single messages through the aggregator, no executor work."""
    return preloaded_task_rate(
        {**env, "AGENTQUEUE_BENCH_FLOOR": mode},
        "floor_app",
        TASK_RUN_JOB,
        lambda index: (f"job-{index}", "bench", "gpt-4o-mini"),
        jobs,
        concurrency,
        log_dir / log_name,
        first_take=first_take,
    )


def p1(
    env: dict[str, str],
    jobs: int,
    concurrency: int,
    rounds: int,
    log_dir: Path,
    *,
    first_take: bool = True,
    floor: bool = False,
) -> None:
    """Bare Celery (threads and prefork), single messages and packed batches, interleaved;
    best of `rounds` each, and bare Celery at its best (the better pool) as the baseline.
    With `floor`, also the aggregator alone (floor_app), same messages."""
    best = {"bare": 0.0, "prefork": 0.0, "interactive": 0.0, "bulk": 0.0, "floor": 0.0}
    for round_number in range(1, rounds + 1):
        measured = {
            "bare": bare_celery(env, jobs, concurrency, log_dir, first_take=first_take),
            "prefork": bare_celery(
                env, jobs, concurrency, log_dir, first_take=first_take, pool="prefork"
            ),
            "interactive": agentqueue_jobs(env, jobs, concurrency, log_dir, first_take=first_take),
            "bulk": agentqueue_jobs(
                env, jobs, concurrency, log_dir, packed=True, first_take=first_take
            ),
        }
        if floor:
            measured["floor"] = floor_jobs(
                env,
                jobs,
                concurrency,
                log_dir,
                mode="aggregator",
                log_name="floor.log",
                first_take=first_take,
            )
        if rounds > 1:
            print(
                f"  round {round_number}: "
                + ", ".join(f"{name} {rate:.0f}" for name, rate in measured.items())
                + " jobs/s"
            )
        best = {name: max(best[name], rate) for name, rate in measured.items()}
    baseline = max(best["bare"], best["prefork"])
    print(f"bare Celery no-op task, threads c={concurrency}:        {best['bare']:8.0f} jobs/s")
    print(
        f"bare Celery no-op task, prefork c={cpu_count()}:          {best['prefork']:8.0f} jobs/s"
    )
    print(f"agentqueue, one message per job (submit):      {best['interactive']:8.0f} jobs/s")
    print(f"agentqueue, packed batch tasks (submit_many):  {best['bulk']:8.0f} jobs/s")
    print(f"P1 interactive ratio: {best['interactive'] / baseline:.2f}")
    print(f"P1 bulk ratio: {best['bulk'] / baseline:.2f}")
    if floor:
        print(f"  floor, aggregator without the executor:    {best['floor']:8.0f} jobs/s")
        print(
            f"  floor ratio (what the executor could reach at no cost): "
            f"{best['floor'] / baseline:.2f}"
        )


@dataclass(frozen=True)
class CeilingRun:
    concurrency: int
    jobs: int
    rate: float
    ceiling: float
    max_in_flight: int
    connections: int


def provider_ceiling_run(
    env: dict[str, str],
    server: LLMServerProcess,
    concurrency: int,
    latency_s: float,
    seconds: float,
    log_dir: Path,
    *,
    first_take: bool = True,
    floor: bool = False,
) -> CeilingRun:
    """The default `agentqueue worker` command with C threads in all (C / CPUs per process) and
    as many connections, against the test server; `floor`: floor_app's single worker with C
    threads, which only makes the provider calls of each group."""
    ceiling = concurrency / latency_s
    jobs = math.ceil(ceiling * seconds)
    share = concurrency if floor else max(1, concurrency // cpu_count())
    worker_env = {
        **env,
        "AGENTQUEUE_PROVIDER": "openai",
        "AGENTQUEUE_OPENAI_BASE_URL": server.base_url,
        "AGENTQUEUE_OPENAI_API_KEY": "sk-bench-not-a-real-key",
        "AGENTQUEUE_HTTP_MAX_CONNECTIONS": str(share),
        "AGENTQUEUE_HTTP_MAX_CONNECTIONS_PER_HOST": str(share),
        # The executor sizes its provider-call threads from this, not from --concurrency.
        "AGENTQUEUE_WORKER_CONCURRENCY": str(share),
    }
    server.reset()
    if floor:
        rate = floor_jobs(
            worker_env,
            jobs,
            concurrency,
            log_dir,
            mode="calls",
            log_name=f"p2-floor-c{concurrency}.log",
            first_take=first_take,
        )
    else:
        rate = agentqueue_jobs(
            worker_env,
            jobs,
            share,
            log_dir,
            log_name=f"p2-c{concurrency}.log",
            first_take=first_take,
        )
    stats = server.stats()
    return CeilingRun(
        concurrency,
        jobs,
        rate,
        ceiling,
        int(stats["max_in_flight"]),
        int(stats["connections_accepted"]),
    )


def p2(
    env: dict[str, str],
    concurrencies: list[int],
    latency_ms: float,
    seconds: float,
    log_dir: Path,
    *,
    first_take: bool = True,
    floor: bool = False,
) -> None:
    print(
        f"LLM test server at {latency_ms:.0f} ms; per C, the default worker command with C "
        "threads and C connections in all, single messages"
    )
    server = LLMServerProcess(latency_ms)
    try:
        for concurrency in concurrencies:
            run = provider_ceiling_run(
                env,
                server,
                concurrency,
                latency_ms / 1000,
                seconds,
                log_dir,
                first_take=first_take,
            )
            print(
                f"  C={run.concurrency}: {run.jobs} jobs at {run.rate:.0f} jobs/s "
                f"(ceiling {run.ceiling:.0f}), max {run.max_in_flight} in flight, "
                f"{run.connections} connections"
            )
            print(f"P2 C={run.concurrency}: {100 * run.rate / run.ceiling:.0f}% of ceiling")
            if floor:
                bare = provider_ceiling_run(
                    env,
                    server,
                    concurrency,
                    latency_ms / 1000,
                    seconds,
                    log_dir,
                    first_take=first_take,
                    floor=True,
                )
                print(
                    f"  floor C={bare.concurrency}, provider calls only: "
                    f"{100 * bare.rate / bare.ceiling:.0f}% of ceiling"
                )
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["p1", "p2", "p9"], default=None)
    parser.add_argument("--p9-jobs", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--p2-concurrency", default="16,64,128")
    parser.add_argument("--p2-seconds", type=float, default=5.0)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--redis-db", type=int, default=8)
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also run floor_app: the same single messages and aggregator without the "
        "executor's SQL, cache and result work (P1), or with provider calls only (P2)",
    )
    parser.add_argument(
        "--clock",
        choices=["first-take", "command"],
        default="first-take",
        help="start timing when the first message leaves the queue (default), or when the "
        "preloaded messages are put back on it",
    )
    args = parser.parse_args()
    first_take = args.clock == "first-take"

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

        started = time.perf_counter()
        if args.only in (None, "p1"):
            print(
                f"{args.jobs} jobs, threads pool, concurrency {args.concurrency}, "
                f"database {args.database}, same Redis for both"
            )
            p1(
                env,
                args.jobs,
                args.concurrency,
                max(1, args.rounds),
                log_dir,
                first_take=first_take,
                floor=args.floor,
            )
        if args.only in (None, "p9"):
            from lone_job import p9

            p9(env, args.p9_jobs, log_dir, floor=args.floor)
        if args.only in (None, "p2"):
            concurrencies = [int(c) for c in args.p2_concurrency.split(",") if c.strip()]
            p2(
                env,
                concurrencies,
                args.latency_ms,
                args.p2_seconds,
                log_dir,
                first_take=first_take,
                floor=args.floor,
            )
        print(f"(benchmark took {time.perf_counter() - started:.1f} s; logs in {log_dir})")


if __name__ == "__main__":
    main()
