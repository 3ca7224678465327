"""Spend of a realistic mixed workload against its naive spend, and the saving of each lever.

Real worker, real beat and the local LLM server (`AGENTQUEUE_PROVIDER=openai`, its batch API
turned on with `AGENTQUEUE_BATCH_API=on`), PostgreSQL and Redis. The workload (`--jobs`,
default 1000, seeded):

- 30% FAQ answers on gpt-4o-mini, 40 questions with Zipf-like popularity (repeats hit cache);
- 25% short classifications, `auto` with min_quality 0.5 (some texts repeat);
- 20% long summaries, `auto` with min_quality 0.7, priority high (some documents repeat);
- 5% critical research on gpt-4o, priority critical;
- 1% long support conversations on gpt-4o-mini that overflow its context window;
- the rest a nightly backlog on gpt-4o, priority low, submitted outside the off-peak window
  (so deferred) and released inside it by beat.

Naive spend: every job on its requested model (for `auto`, the model the balanced score picks,
which is what `auto` bought before cost-first selection), standard tier, no cache, whole
context, at the same token counts. Each job's saving is split in order: right-sizing (naive
model -> chosen model), context pruning (tokens dropped), tier (standard -> batch/flex price),
cache (the rest of a cache hit's price).

    python bench/cost.py [--jobs 1000] [--redis-db 14] [--latency-ms 20]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis
from harness import REDIS_SERVER, LLMServerProcess, apply_env, bench_env, scratch_postgres

GOAL = Decimal("0.40")


def _zipf_pick(rng: random.Random, count: int) -> int:
    weights = [1 / (rank + 1) for rank in range(count)]
    return rng.choices(range(count), weights)[0]


def workload(total: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    words = [f"w{n}" for n in range(500)]

    def text(n: int, salt: int) -> str:
        local = random.Random(salt)
        return " ".join(local.choice(words) for _ in range(n))

    jobs: list[dict[str, Any]] = []
    shares = {"faq": 0.30, "classify": 0.25, "summary": 0.20, "critical": 0.05, "context": 0.01}
    counts = {kind: int(total * share) for kind, share in shares.items()}
    counts["backlog"] = total - sum(counts.values())
    for _ in range(counts["faq"]):
        q = _zipf_pick(rng, 40)
        jobs.append(_job("faq", "gpt-4o-mini", f"FAQ {q}: {text(30, q)}", 150))
    for _ in range(counts["classify"]):
        t = rng.randrange(150)
        jobs.append(_job("classify", "auto", f"Classify: {text(60, 1000 + t)}", 20, quality=0.5))
    for _ in range(counts["summary"]):
        d = rng.randrange(140)
        body = f"Summarise: {text(1500, 2000 + d)}"
        jobs.append(_job("summary", "auto", body, 400, quality=0.7, priority="high"))
    for i in range(counts["critical"]):
        jobs.append(
            _job("research", "gpt-4o", f"Research {i}: {text(800, 3000 + i)}", 800, "critical")
        )
    for i in range(counts["context"]):
        turns = [
            {
                "role": "user" if n % 2 == 0 else "assistant",
                "content": text(1200, 4000 + i * 500 + n),
            }
            for n in range(100)
        ]
        jobs.append({**_job("support", "gpt-4o-mini", "", 200), "messages": turns})
    for i in range(counts["backlog"]):
        body = f"Nightly report {i}: {text(700, 5000 + i)}"
        jobs.append(_job("backlog", "gpt-4o", body, 300, priority="low"))
    rng.shuffle(jobs)
    return jobs


def _job(
    agent_type: str,
    model: str,
    content: str,
    max_tokens: int,
    priority: str = "normal",
    *,
    quality: float | None = None,
) -> dict[str, Any]:
    job: dict[str, Any] = {
        "agent_type": agent_type,
        "model": model,
        "priority": priority,
        "messages": [{"role": "user", "content": content}],
        "params": {"temperature": 0, "max_tokens": max_tokens},
    }
    if quality is not None:
        job["requirements"] = {"min_quality": quality}
    return job


def peak_window() -> str:
    start = (datetime.now(UTC).hour + 2) % 24
    return f"{start:02d}:00-{(start + 1) % 24:02d}:00"


def run(args: argparse.Namespace) -> None:
    from agentqueue.budget.gate import BudgetGate
    from agentqueue.budget.pricing import PriceBook, to_money
    from agentqueue.client import AgentQueue
    from agentqueue.jobs import AgentJob, JobStatus
    from agentqueue.persistence.migrate import upgrade
    from agentqueue.settings import load_settings
    from agentqueue.workers.process import BeatProcess, WorkerProcess

    server = LLMServerProcess(args.latency_ms)
    logs = Path(tempfile.mkdtemp(prefix="aq-cost-"))
    redis_url = f"{REDIS_SERVER}/{args.redis_db}"
    for db in (args.redis_db, args.redis_db + 1):
        redis.Redis.from_url(f"{REDIS_SERVER}/{db}").flushdb()
    try:
        with scratch_postgres() as database_url:
            upgrade(database_url)
            workers_env = bench_env(
                redis_url,
                database_url,
                AGENTQUEUE_PROVIDER="openai",
                AGENTQUEUE_OPENAI_BASE_URL=server.base_url,
                AGENTQUEUE_BATCH_API="on",
                AGENTQUEUE_OFFPEAK_WINDOWS="00:00-24:00",  # workers and beat: the window is open
                AGENTQUEUE_BEAT_RELEASE_S="2",
                AGENTQUEUE_BEAT_BATCHES_S="2",
                AGENTQUEUE_BATCH_POLL_S="1",
                AGENTQUEUE_BATCH_POLL_MAX_S="2",
            )
            client_env = {**workers_env, "AGENTQUEUE_OFFPEAK_WINDOWS": peak_window()}
            apply_env(client_env)
            settings = load_settings()
            queue = AgentQueue(settings)
            jobs = workload(args.jobs, args.seed)
            started = time.monotonic()
            handles = queue.submit_many(jobs)
            deferred = Counter(
                jobs[i]["priority"]
                for i, h in enumerate(handles)
                if h.status().status is JobStatus.DEFERRED
            )
            worker = WorkerProcess(workers_env, concurrency=32, log_file=logs / "worker.log")
            worker.start().wait_ready(queue.celery, timeout=60)
            beat = BeatProcess(workers_env, logs).start()
            try:
                results = queue.wait([h.id for h in handles], timeout=args.timeout)
            finally:
                beat.stop()
                worker.stop()
            elapsed = time.monotonic() - started

            prices = PriceBook()
            balanced = BudgetGate(queue.sessions, load_settings(selection="balanced"))
            now = datetime.now(UTC)
            naive = spend = Decimal(0)
            levers = dict.fromkeys(
                ("right-sizing", "context pruning", "batch/flex tier", "cache"), Decimal(0)
            )
            tiers: Counter[str] = Counter()
            for job, handle in zip(jobs, handles, strict=True):
                result = results[handle.id]
                if result.status is not JobStatus.SUCCEEDED:
                    raise SystemExit(f"job {handle.id} ({job['agent_type']}) ended {result.status}")
                agent_job = AgentJob.model_validate(job)
                wanted = job["model"]
                if wanted == "auto":
                    option = balanced.planner.plan(agent_job, "standard", now).normal
                    wanted = getattr(option, "model", result.model)
                chosen = result.model or wanted
                full_in = result.usage.input_tokens + (result.context_tokens_saved or 0)
                used_in, out = result.usage.input_tokens, result.usage.output_tokens

                def std(model: str, tokens_in: int, out: int = out) -> Decimal:
                    return to_money(prices.price(model).cost(tokens_in, out))

                job_naive = std(wanted, full_in)
                sized = std(chosen, full_in)
                pruned = std(chosen, used_in)
                tier = result.service_tier or "standard"
                tiered = to_money(prices.price(chosen, tier).cost(used_in, out))
                naive += job_naive
                spend += result.cost
                levers["right-sizing"] += job_naive - sized
                levers["context pruning"] += sized - pruned
                levers["batch/flex tier"] += pruned - tiered
                levers["cache"] += tiered - result.cost
                tiers[(result.cache_tier and "cache") or tier] += 1
            high = [
                r
                for r in results.values()
                if r.priority is not None and r.priority.value in ("critical", "high")
            ]
            stats = server.stats()
    finally:
        server.stop()
    ratio = spend / naive
    print(f"{len(jobs)} jobs in {elapsed:.0f} s; by tier: {dict(tiers)}")
    print(
        f"critical/high: {len(high)} finished, {deferred['critical'] + deferred['high']} deferred;"
        f" low deferred at submit: {deferred['low']}"
    )
    print(
        f"server: {stats['requests_received']} live calls, {stats['batches_created']} batches "
        f"with {stats['batch_lines_submitted']} requests"
    )
    print(f"naive spend ${naive:.4f}, spend ${spend:.4f}")
    for name, saved in levers.items():
        print(f"  saved by {name:<16} ${saved:.4f}  ({saved / naive:.1%} of naive)")
    verdict = "met" if ratio <= GOAL else "not met"
    print(f"cost ratio: {ratio:.2f}              goal <= {GOAL} ({verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--redis-db", type=int, default=14)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
