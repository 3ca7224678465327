"""Run the demo: pick services (or start embedded ones), start a worker, run a workload."""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console

from agentqueue.client import AgentQueue
from agentqueue.demo.embedded_redis import EmbeddedRedis, redis_answers
from agentqueue.demo.report_file import write_demo_report
from agentqueue.demo.summary import Batching, OffPeak, read_ledger, summary
from agentqueue.demo.workload import sample_jobs
from agentqueue.jobs import JobResult, JobStatus, utcnow
from agentqueue.messaging import Dispatcher, JobRef, pack
from agentqueue.persistence.migrate import upgrade
from agentqueue.progress import wait_with_progress
from agentqueue.scheduler.release import release_deferred
from agentqueue.scheduler.windows import OffPeakSchedule
from agentqueue.setting_types.windows import windows_text
from agentqueue.settings import get_settings, load_settings
from agentqueue.terminal import emit
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
            # The demo runs no beat to submit provider batches: off-peak work takes flex.
            "AGENTQUEUE_BATCH_API": "off",
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
            offpeak = OffPeakSchedule.from_settings(settings)
            inside_window = offpeak.is_off_peak(utcnow())
            started = time.monotonic()
            ids = [h.id for h in queue.submit_many(workload)]
            current = queue.statuses(ids)
            deferred = [i for i in ids if current[i].status is JobStatus.DEFERRED]
            now_ids = [i for i in ids if i not in set(deferred)]
            results = wait_with_progress(queue, now_ids, timeout=timeout, label="jobs")
            if deferred:
                results.update(_run_deferred(console, queue, deferred, current, timeout))
            elapsed = time.monotonic() - started
            ledger = read_ledger(queue.sessions, ids)
    finally:
        worker.stop()
        if embedded is not None:
            embedded.stop()
    final = [results[i] for i in ids]
    emit(
        *summary(
            final,
            elapsed,
            batching=_batching(
                dict(zip(ids, workload, strict=True)),
                [now_ids, deferred],
                queue.settings.packed_batch_size,
            ),
            offpeak=OffPeak(
                inside_window=inside_window,
                windows=f"{windows_text(settings.offpeak_windows)} {settings.timezone}",
                low_jobs=sum(job.get("priority") == "low" for job in workload),
                deferred=len(deferred),
            ),
            ledger=ledger,
        )
    )
    write_demo_report(console, settings)
    command = agentqueue_command()
    needs_no_redis = " (they read only the database; the demo's private Redis has stopped)"
    console.print(
        f"[dim]the ledger keeps these figures: `{command} report` prints them as tables and "
        f"`{command} budget history` per day and model"
        f"{needs_no_redis if embedded is not None else ''}[/dim]",
        soft_wrap=True,
    )
    return 0 if len(results) == len(ids) else 1


def _batching(jobs: dict[str, dict[str, Any]], sends: list[list[str]], size: int) -> Batching:
    """The packed batch tasks that the client's submit and the release sent: the same `pack`."""
    tasks = [
        chunk
        for sent in sends
        for chunk in pack(
            [
                JobRef(i, job["agent_type"], job["model"], job.get("priority", "normal"))
                for i, job in ((i, jobs[i]) for i in sent)
            ],
            size,
        )
    ]
    return Batching(
        jobs=sum(len(chunk) for chunk in tasks),
        tasks=len(tasks),
        largest=max((len(chunk) for chunk in tasks), default=0),
    )


def agentqueue_command() -> str:
    """How to run `agentqueue` from here: the bare name if PATH finds this one, else its path
    (`.venv/bin/agentqueue` after `make demo`)."""
    script = Path(sys.prefix) / "bin" / "agentqueue"
    if not script.exists():
        return f"{Path(sys.executable).name} -m agentqueue.cli"
    found = shutil.which("agentqueue")
    if found and Path(found).resolve() == script.resolve():
        return "agentqueue"
    relative = os.path.relpath(script)
    return str(script) if relative.startswith("..") else relative


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
