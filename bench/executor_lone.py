"""A lone job's cost in the executor alone: no Celery, no client, no broker message.

Inserts `--jobs` queued critical jobs in a scratch PostgreSQL database, then runs each through
`BatchExecutor.run` one after the other in this process (the simulated provider, zero latency,
Redis for results and the journal), after `--warm` runs to warm the pools and caches. Prints
this thread's CPU time, the whole process's (a group's provider calls run on other threads too)
and the wall time per job; with `--group N`, the jobs go through in groups of N (as a packed
batch task's are), not alone; with `--profile`, the `--top` functions by cumulative wall time
under cProfile (the database waits show as psycopg's `wait`).

    .venv/bin/python bench/executor_lone.py [--jobs 100] [--warm 50] [--group 1] [--profile]
        [--redis-db 8]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from harness import REDIS_SERVER, scratch_postgres

from agentqueue.jobs import AgentJob, JobStatus, utcnow
from agentqueue.persistence import jobs_repository
from agentqueue.persistence.migrate import upgrade
from agentqueue.settings import load_settings
from agentqueue.workers.context import WorkerContext
from agentqueue.workers.executor import BatchExecutor


def queued(context: WorkerContext, count: int) -> list[str]:
    jobs = [
        AgentJob.model_validate(
            {
                "agent_type": "bench",
                "model": "gpt-4o-mini",
                "priority": "critical",
                "messages": [{"role": "user", "content": f"request {index} {time.time()}"}],
            }
        )
        for index in range(count)
    ]
    with context.sessions.begin() as session:
        jobs_repository.insert_new(session, jobs, status=JobStatus.QUEUED, now=utcnow())
    return [job.id for job in jobs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--warm", type=int, default=50)
    parser.add_argument("--group", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--redis-db", type=int, default=8)
    args = parser.parse_args()
    with scratch_postgres() as url:
        upgrade(url)
        settings = load_settings(redis_url=f"{REDIS_SERVER}/{args.redis_db}", database_url=url)
        context = WorkerContext.build(settings)
        try:
            executor = BatchExecutor(context)
            warm, measured = queued(context, args.warm), queued(context, args.jobs)
            size = max(1, args.group)
            for start in range(0, len(warm), size):
                executor.run(warm[start : start + size])
            profile = cProfile.Profile() if args.profile else None
            cpu, process, wall = time.thread_time(), time.process_time(), time.perf_counter()
            if profile is not None:
                profile.enable()
            for start in range(0, len(measured), size):
                executor.run(measured[start : start + size])
            if profile is not None:
                profile.disable()
            cpu, process = time.thread_time() - cpu, time.process_time() - process
            wall = time.perf_counter() - wall
            per_job = 1000 / len(measured)
            print(
                f"{len(measured)} jobs in groups of {size} through BatchExecutor.run on "
                "PostgreSQL: "
                f"{cpu * per_job:.2f} ms of this thread's CPU ({process * per_job:.2f} ms of the "
                f"process's, its call threads too) and {wall * per_job:.2f} ms of wall time per "
                f"job{' (under cProfile)' if profile else ''}"
            )
            if profile is not None:
                pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
        finally:
            context.close()


if __name__ == "__main__":
    main()
