"""Where a job's time goes in the worker: wall and thread-CPU time of each step, per call.

Runs P9's lone jobs (`--p9`) or P2 at one concurrency (`--p2 C`, 200 ms test server) with the
worker processes' steps wrapped by `bench/phase_trace/sitecustomize.py`, then prints, per
step, how often it ran and the median and mean of its wall time and of its thread's CPU time.
The wrapping costs a few microseconds per call; compare steps with each other, not with the
unwrapped benchmarks.

    .venv/bin/python bench/phases.py --p2 64     # or --p9

P1's load is traced by `worker_cpu.py --trace`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

import redis
from harness import REDIS_SERVER, LLMServerProcess, apply_env, bench_env, scratch_postgres

TRACER = Path(__file__).resolve().parent / "phase_trace"


def trace_workers(env: dict[str, str], trace_dir: Path) -> None:
    """Have the worker processes started with `env` trace their steps into `trace_dir`."""
    env["PYTHONPATH"] = os.pathsep.join([str(TRACER), env["PYTHONPATH"]])
    env["AQ_PHASE_TRACE_DIR"] = str(trace_dir)  # read by the worker processes only


def report(trace_dir: Path) -> None:
    wall: dict[str, list[float]] = defaultdict(list)
    cpu: dict[str, list[float]] = defaultdict(list)
    for path in trace_dir.glob("*.txt"):
        for line in path.read_text().splitlines():
            name, _, took, thread_cpu = line.split()
            wall[name].append(float(took) * 1000)
            cpu[name].append(float(thread_cpu) * 1000)
    heading = ("step", "calls", "wall ms p50", "mean", "cpu ms p50", "mean")
    print("{:30s} {:>6s} {:>12s} {:>7s} {:>11s} {:>6s}".format(*heading))
    for name in sorted(wall, key=lambda n: -statistics.mean(wall[n])):
        w, c = wall[name], cpu[name]
        print(
            f"{name:30s} {len(w):6d} {statistics.median(w):12.2f} {statistics.mean(w):7.2f} "
            f"{statistics.median(c):11.2f} {statistics.mean(c):6.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--p9", action="store_true")
    which.add_argument("--p2", type=int, metavar="C")
    parser.add_argument("--redis-db", type=int, default=8)
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="aqphases-"))
    trace_dir = log_dir / "trace"
    trace_dir.mkdir()
    redis_url = f"{REDIS_SERVER}/{args.redis_db}"
    with scratch_postgres() as database_url:
        env = bench_env(redis_url, database_url, AGENTQUEUE_SIMULATED_LATENCY_MS="0")
        trace_workers(env, trace_dir)
        apply_env(env)
        from agentqueue.persistence.migrate import upgrade

        upgrade(database_url)
        redis.Redis.from_url(redis_url).flushdb()
        if args.p9:
            from lone_job import agentqueue_lone_job_ms

            whole, submit = agentqueue_lone_job_ms(env, 50, log_dir)
            print(f"P9 lone job p50 (traced): {whole:.1f} ms, its submit call {submit:.1f} ms")
        else:
            import throughput

            server = LLMServerProcess(200)
            try:
                run = throughput.provider_ceiling_run(env, server, args.p2, 0.2, 5.0, log_dir)
            finally:
                server.stop()
            print(f"P2 C={args.p2} (traced): {100 * run.rate / run.ceiling:.0f}% of ceiling")
    report(trace_dir)


if __name__ == "__main__":
    main()
