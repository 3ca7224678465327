"""Where a worker's time goes under P1's load: py-spy samples one Celery process of the
default `agentqueue worker` command while it drains single-message jobs (simulated provider at
zero latency, PostgreSQL; `--packed`: packed batch tasks), and prints the share of samples by
module and by function, counting only the thread that holds the GIL (`--gil`), which is what
one process's throughput is bound by.

    .venv/bin/pip install py-spy      # not a dependency of the project
    .venv/bin/python bench/profile_worker.py [--jobs 6000] [--seconds 8] [--packed] [--redis-db 8]
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import redis
from harness import (
    QUEUE,
    REDIS_SERVER,
    apply_env,
    bench_env,
    bench_jobs,
    idle_worker,
    scratch_postgres,
)


def frames_of(line: str) -> tuple[list[str], int]:
    stack, _, count = line.rpartition(" ")
    return stack.split(";"), int(count)


def area(frame: str) -> str:
    """`function (path/to/module.py:line)` -> the package area the frame belongs to."""
    path = frame.rpartition("(")[2]
    for marker, name in (
        ("agentqueue/", "agentqueue/"),
        ("sqlalchemy/", "sqlalchemy"),
        ("psycopg", "psycopg"),
        ("kombu/", "kombu"),
        ("celery/", "celery"),
        ("redis/", "redis-py"),
        ("pydantic", "pydantic"),
        ("billiard/", "billiard"),
        ("prometheus_client/", "prometheus"),
        ("json/", "json"),
        ("threading.py", "threading"),
        ("concurrent/", "concurrent"),
    ):
        if marker in path:
            if name == "agentqueue/":
                rest = path.split("agentqueue/", 1)[1]
                return "agentqueue/" + rest.split(":")[0]
            return name
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=6000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--redis-db", type=int, default=8)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--packed", action="store_true", help="P1's bulk load: packed batch tasks (submit_many)"
    )
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(
        Path(__file__).resolve().parent.parent / ".venv/bin/py-spy"
    )

    with ExitStack() as stack:
        log_dir = Path(tempfile.mkdtemp(prefix="aqprofile-"))
        database_url = stack.enter_context(scratch_postgres())
        redis_url = f"{REDIS_SERVER}/{args.redis_db}"
        env = bench_env(redis_url, database_url, AGENTQUEUE_SIMULATED_LATENCY_MS="0")
        apply_env(env)
        from agentqueue.client import AgentQueue
        from agentqueue.persistence.migrate import upgrade
        from agentqueue.settings import get_settings

        upgrade(database_url)
        redis.Redis.from_url(redis_url).flushdb()
        queue = AgentQueue(get_settings())
        worker = idle_worker(
            env,
            "agentqueue.workers.app",
            args.concurrency,
            log_dir / "worker.log",
            processes="default",
        )
        try:
            worker.wait_ready(queue.celery, timeout=60)
            queue.submit_many(
                bench_jobs(args.jobs),
                packed=args.packed,
            )
            target = worker.children()[0]
            queue.celery.control.add_consumer(QUEUE, destination=worker.node_names, reply=True)
            time.sleep(1.0)  # past the start of consumption
            raw = log_dir / "profile.txt"
            subprocess.run(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(target),
                    "--duration",
                    str(int(args.seconds)),
                    "--rate",
                    "200",
                    "--gil",
                    "--format",
                    "raw",
                    "--output",
                    str(raw),
                    "--nonblocking",
                ],
                check=True,
                capture_output=True,
            )
        finally:
            worker.stop()
            queue.close()

    by_area: collections.Counter[str] = collections.Counter()
    by_function: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        frames, count = frames_of(line)
        total += count
        leaf = frames[-1]
        by_area[area(leaf)] += count
        by_function[leaf] += count
        for frame in set(frames):
            if "agentqueue/" in frame:
                inclusive[frame] += count
    print(f"{total} samples holding the GIL in one worker process ({raw})")
    print("\nself time by area:")
    for name, count in by_area.most_common(args.top):
        print(f"  {100 * count / total:5.1f}%  {name}")
    print("\nself time by function:")
    for name, count in by_function.most_common(args.top):
        print(f"  {100 * count / total:5.1f}%  {name}")
    print("\ninclusive time of agentqueue functions:")
    for name, count in inclusive.most_common(args.top):
        print(f"  {100 * count / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
