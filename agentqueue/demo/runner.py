"""Run the demo: pick services (or start embedded ones), start a worker, run a workload."""

from __future__ import annotations

import os
import time
import uuid
from collections import defaultdict
from decimal import Decimal

from rich.console import Console
from rich.table import Table

from agentqueue.client import AgentQueue
from agentqueue.demo.embedded_redis import EmbeddedRedis, redis_answers
from agentqueue.demo.report_file import write_demo_report
from agentqueue.demo.workload import sample_jobs
from agentqueue.jobs import JobResult, JobStatus, utcnow
from agentqueue.messaging import Dispatcher
from agentqueue.persistence.migrate import upgrade
from agentqueue.progress import wait_with_progress
from agentqueue.scheduler.release import release_deferred
from agentqueue.settings import get_settings, load_settings
from agentqueue.workers.process import WorkerProcess


def run_demo(
    *, jobs: int = 120, concurrency: int = 32, timeout: float = 120.0, embedded_redis: bool = False
) -> int:
    """Returns a process exit code: 0 when every job reached a final state."""
    console = Console()
    settings = get_settings()
    embedded: EmbeddedRedis | None = None
    if embedded_redis or (not settings.redis_configured and not redis_answers(settings.redis_url)):
        embedded = EmbeddedRedis(settings.data_dir / "demo-redis").start()
        os.environ["AGENTQUEUE_REDIS_URL"] = embedded.url
        console.print(f"[dim]started a private Redis at {embedded.socket}[/dim]")
    settings = load_settings()
    database = settings.resolved_database_url
    console.print(
        f"[dim]database: {database.split('@')[-1]}  redis: "
        f"{settings.redis_url.split('@')[-1]}[/dim]"
    )
    upgrade(database)

    worker = WorkerProcess(
        {
            "AGENTQUEUE_REDIS_URL": settings.redis_url,
            "AGENTQUEUE_DATABASE_URL": database,
            "AGENTQUEUE_AUTO_MIGRATE": "false",
        },
        name="demo",
        concurrency=concurrency,
        log_file=settings.data_dir / "demo-worker.log",
    ).start()
    try:
        with AgentQueue(settings) as queue:
            worker.wait_ready(queue.celery, timeout=60)
            console.print(f"[dim]worker {worker.node_name} is up[/dim]")
            workload = sample_jobs(jobs, run_tag=f" ({uuid.uuid4().hex[:6]})")
            started = time.monotonic()
            ids = [h.id for h in queue.submit_many(workload)]
            current = queue.statuses(ids)
            deferred = [i for i in ids if current[i].status is JobStatus.DEFERRED]
            now_ids = [i for i in ids if i not in set(deferred)]
            results = wait_with_progress(queue, now_ids, timeout=timeout, label="jobs")
            if deferred:
                results.update(_run_deferred(console, queue, deferred, current, timeout))
            elapsed = time.monotonic() - started
    finally:
        worker.stop()
        if embedded is not None:
            embedded.stop()
    print_summary(console, [results[i] for i in ids], elapsed)
    write_demo_report(console, settings)
    return 0 if len(results) == len(ids) else 1


def _run_deferred(
    console: Console,
    queue: AgentQueue,
    deferred: list[str],
    current: dict[str, JobResult],
    timeout: float,
) -> dict[str, JobResult]:
    """Show the off-peak path without waiting for the night: release as the window would."""
    opens = max(current[i].release_after or utcnow() for i in deferred)
    console.print(
        f"{len(deferred)} low-priority jobs were deferred to the off-peak window "
        f"(opens {opens:%Y-%m-%d %H:%M} UTC); releasing them now as beat would then, "
        "on the cheaper tier where the model has one"
    )
    dispatcher = Dispatcher(queue.celery, packed_batch_size=queue.settings.packed_batch_size)
    release_deferred(
        queue.sessions,
        lambda released: dispatcher.send(
            released,
            packed=True,
            service_tier="flex",
            released=True,
        ),
        now=opens,
        limit=len(deferred),
        window_open=True,
    )
    return wait_with_progress(queue, deferred, timeout=timeout, label="off-peak jobs")


def print_summary(console: Console, results: list[JobResult], elapsed: float) -> None:
    groups: dict[tuple[str, str], list[JobResult]] = defaultdict(list)
    for result in results:
        groups[(result.agent_type or "?", result.model or "?")].append(result)
    table = Table(
        "agent type",
        "model",
        "jobs",
        "ok",
        "tokens in/out",
        "cached",
        "cost $",
        title="agentqueue demo",
    )
    total_cost = Decimal(0)
    for (agent_type, model), group in sorted(groups.items()):
        cost = sum((r.cost for r in group), Decimal(0))
        total_cost += cost
        table.add_row(
            agent_type,
            model,
            str(len(group)),
            str(sum(r.status.value == "succeeded" for r in group)),
            f"{sum(r.usage.input_tokens for r in group)}/"
            f"{sum(r.usage.output_tokens for r in group)}",
            str(sum(r.cache_tier is not None for r in group)),
            f"{cost:.6f}",
        )
    console.print(table)
    rate = len(results) / elapsed if elapsed else 0.0
    flex = sum(r.service_tier == "flex" for r in results)
    console.print(
        f"{len(results)} jobs in {elapsed:.2f} s ({rate:.0f} jobs/s), "
        f"total cost ${total_cost:.6f}; {flex} ran on the flex tier"
    )
    console.print("[dim]see `agentqueue stats` and `agentqueue budget show` for the ledger[/dim]")
