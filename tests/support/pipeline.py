"""A running agentqueue for end-to-end tests: real Redis, a real database, real worker processes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentqueue.client import AgentQueue
from agentqueue.settings import Settings, load_settings
from agentqueue.workers.process import WorkerProcess


@dataclass
class Pipeline:
    env: dict[str, str]
    settings: Settings
    queue: AgentQueue
    log_dir: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def start_worker(
        self, *, wait: bool = True, env: dict[str, str] | None = None, **options: Any
    ) -> WorkerProcess:
        name = options.pop("name", f"w{len(self.workers)}")
        worker = WorkerProcess(
            {**self.env, **(env or {})},
            name=name,
            log_file=self.log_dir / f"{name}.log",
            **options,
        ).start()
        self.workers.append(worker)
        if wait:
            worker.wait_ready(self.queue.celery)
        return worker

    def worker_log(self, index: int = 0) -> str:
        log_file = self.workers[index].log_file
        return log_file.read_text(errors="replace") if log_file else ""

    def stop(self) -> None:
        for worker in self.workers:  # all at once, then wait for each
            worker.terminate()
        for worker in self.workers:
            worker.stop(timeout=20)
        self.queue.close()


@contextmanager
def running_pipeline(
    redis_url: str, database_url: str, log_dir: Path, **env: str
) -> Iterator[Pipeline]:
    full_env = {
        "AGENTQUEUE_REDIS_URL": redis_url,
        "AGENTQUEUE_DATABASE_URL": database_url,
        "AGENTQUEUE_AUTO_MIGRATE": "false",
        "AGENTQUEUE_DATA_DIR": str(log_dir),
        # All day off-peak unless a test says otherwise, so low jobs run at once; and no
        # provider batches (no beat runs here to submit them): off-peak work takes flex where
        # the model has it, else standard. Tests of provider batches turn them on.
        "AGENTQUEUE_OFFPEAK_WINDOWS": "00:00-24:00",
        "AGENTQUEUE_BATCH_API": "off",
        **{f"AGENTQUEUE_{k.upper()}": v for k, v in env.items()},
    }
    settings = load_settings(
        **{k.removeprefix("AGENTQUEUE_").lower(): v for k, v in full_env.items()}
    )
    pipeline = Pipeline(
        env=full_env, settings=settings, queue=AgentQueue(settings), log_dir=log_dir
    )
    try:
        yield pipeline
    finally:
        pipeline.stop()


def simple_job(index: int = 0, **overrides: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "agent_type": "support-bot",
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"question number {index}"}],
    }
    job.update(overrides)
    return job
