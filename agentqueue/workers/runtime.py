"""This process's worker context and batch aggregator, built on first use (so after any fork)."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

from agentqueue.settings import get_settings
from agentqueue.workers.aggregator import BatchAggregator, FlushRecord
from agentqueue.workers.alert_events import send_alert_event
from agentqueue.workers.arrivals import held_job_ids
from agentqueue.workers.batch_sizes import BatchSizes
from agentqueue.workers.context import WorkerContext
from agentqueue.workers.executor import BatchExecutor
from agentqueue.workers.work import ExecutionReport

batch_log = logging.getLogger("agentqueue.batches")


def _log_flush(record: FlushRecord) -> None:
    if batch_log.isEnabledFor(logging.INFO):
        batch_log.info(
            "batch flushed agent_type=%s model=%s size=%d waited_ms=%.1f",
            record.key[0],
            record.key[1],
            record.size,
            record.waited_s * 1000,
        )


@dataclass(frozen=True)
class _Runtime:
    context: WorkerContext
    aggregator: BatchAggregator[ExecutionReport]


def _build(context: WorkerContext) -> _Runtime:
    settings = context.settings
    sizes = BatchSizes(context.redis)

    def on_flush(record: FlushRecord) -> None:
        _log_flush(record)
        sizes.record(record)

    aggregator: BatchAggregator[ExecutionReport] = BatchAggregator(
        lambda ids: BatchExecutor(context, calls_phase=aggregator.calls_phase).run(ids),
        size=settings.batch_size,
        timeout_s=settings.batch_timeout_ms / 1000,
        on_flush=on_flush,
        company=held_job_ids,
    )
    return _Runtime(context, aggregator)


_lock = threading.Lock()
_runtimes: dict[int, _Runtime] = {}
_job_threads: int | None = None


def set_job_threads(count: int | None) -> None:
    """Told at worker start: how many jobs this process may hold at once."""
    global _job_threads
    _job_threads = count


def _current() -> _Runtime:
    pid = os.getpid()
    runtime = _runtimes.get(pid)
    if runtime is None:
        with _lock:
            runtime = _runtimes.get(pid)
            if runtime is None:
                context = WorkerContext.build(
                    get_settings(), alert_sink=send_alert_event, job_threads=_job_threads
                )
                runtime = _runtimes[pid] = _build(context)
    return runtime


def current_context() -> WorkerContext:
    """The context of this process, built on first use (so after any fork)."""
    return _current().context


def current_aggregator() -> BatchAggregator[ExecutionReport]:
    """This process's aggregator: single-message jobs are grouped here for the executor."""
    return _current().aggregator


def close_current_context() -> None:
    with _lock:
        runtime = _runtimes.pop(os.getpid(), None)
    if runtime is not None:
        runtime.context.close()
