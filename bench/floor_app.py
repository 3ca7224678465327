"""The floor under agentqueue's single-message path, for `throughput.py --floor`.

A Celery app with agentqueue's broker settings whose `agentqueue.run_job` task hands its job id
to a `BatchAggregator` built as the worker builds its own: the same batch size and timeout, and
the same company rule (a job waits only for jobs of its key that hold a thread, critical and
high never wait, slow calls let the next group go). Its groups skip the batch executor's SQL,
cache and result work. `AGENTQUEUE_BENCH_FLOOR` says what a group still does: `aggregator`
(nothing), `calls` (one real provider call per job, concurrently on a pool of
`AGENTQUEUE_WORKER_CONCURRENCY` threads, as the executor makes them) or `results` (the calls,
then each job's result published to Redis as the executor publishes it, so that a client's
`submit(...).get()` returns: P9's floor, which never touches the ledger or the jobs table in
the worker).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis

from agentqueue.constants import TASK_RUN_JOB
from agentqueue.jobs import JobResult, JobStatus
from agentqueue.providers import ProviderRequest, build_provider
from agentqueue.results import ResultStore
from agentqueue.settings import get_settings
from agentqueue.workers.aggregator import BatchAggregator
from agentqueue.workers.app_factory import GuardedCelery
from agentqueue.workers.arrivals import held_job_ids, is_urgent
from agentqueue.workers.config import celery_config

app = GuardedCelery("floor")  # agentqueue's transport, as its workers have
_config = celery_config(get_settings())
_config["task_queues"] = None
_config["task_create_missing_queues"] = True
app.config_from_object(_config)

_lock = threading.Lock()
_aggregator: BatchAggregator[None] | None = None


def _build_aggregator() -> BatchAggregator[None]:
    settings = get_settings()
    mode = os.environ.get("AGENTQUEUE_BENCH_FLOOR", "aggregator")
    provider = build_provider(settings)
    pool = ThreadPoolExecutor(max_workers=settings.worker_concurrency)
    results = ResultStore(redis.Redis.from_url(settings.redis_url), ttl_s=settings.result_ttl_s)

    def run(job_ids: Sequence[str]) -> None:
        if mode not in ("calls", "results"):
            return
        requests = [
            ProviderRequest(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"request {job_id}"}],
                max_tokens=64,
                request_id=job_id,
            )
            for job_id in job_ids
        ]
        with aggregator.calls_phase():
            if len(requests) == 1:  # as the executor: a lone call runs in the job's own thread
                responses = [provider.complete(requests[0])]
            else:
                responses = list(pool.map(provider.complete, requests))
        if mode == "results":
            results.publish(
                [
                    JobResult(
                        job_id=job_id,
                        status=JobStatus.SUCCEEDED,
                        output=response.output,
                        model=response.model,
                        usage=response.usage,
                    )
                    for job_id, response in zip(job_ids, responses, strict=True)
                ]
            )

    aggregator: BatchAggregator[None] = BatchAggregator(
        run,
        size=settings.batch_size,
        timeout_s=settings.batch_timeout_ms / 1000,
        company=held_job_ids,
    )
    return aggregator


def _the_aggregator() -> BatchAggregator[None]:
    global _aggregator
    if _aggregator is None:
        with _lock:
            if _aggregator is None:
                _aggregator = _build_aggregator()
    return _aggregator


@app.task(bind=True, name=TASK_RUN_JOB, acks_late=True, ignore_result=True)
def floor_run_job(self: Any, job_id: str, agent_type: str, model: str) -> None:
    """Messages as the client API sends them; critical and high never wait for company."""
    _the_aggregator().submit(
        (agent_type, model), job_id, urgent=is_urgent(self.request.delivery_info)
    )
