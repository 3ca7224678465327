"""Shared clients of one worker process, built once and handed to the executor."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis
from sqlalchemy.orm import Session, sessionmaker

from agentqueue.budget.alerts import AlertSink
from agentqueue.budget.gate import BudgetGate
from agentqueue.cache.tiered import TieredCache
from agentqueue.metrics.job_metrics import JobMetrics
from agentqueue.persistence.engine import get_sessionmaker
from agentqueue.providers import Provider, build_provider
from agentqueue.results import ResultStore
from agentqueue.scheduler.windows import OffPeakSchedule
from agentqueue.settings import Settings, get_settings
from agentqueue.workers.aggregator import BatchAggregator, FlushRecord
from agentqueue.workers.arrivals import held_job_ids
from agentqueue.workers.group_commit import GroupCommit
from agentqueue.workers.pending_answers import PendingAnswers

if TYPE_CHECKING:
    from agentqueue.workers.executor import ExecutionReport

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


@dataclass
class WorkerContext:
    """Everything a job needs that is expensive to create: one of each per process."""

    settings: Settings
    sessions: sessionmaker[Session]
    redis: redis.Redis
    results: ResultStore
    provider: Provider
    gate: BudgetGate
    cache: TieredCache
    offpeak: OffPeakSchedule
    pending_answers: PendingAnswers
    calls: ThreadPoolExecutor = field(repr=False)
    metrics: JobMetrics = field(default_factory=lambda: JobMetrics(enabled=False), repr=False)
    aggregator: BatchAggregator[ExecutionReport] = field(init=False, repr=False)
    group_commit: GroupCommit = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from agentqueue.workers.executor import BatchExecutor

        self.group_commit = GroupCommit(self.sessions, self.gate)
        self.aggregator = BatchAggregator(
            lambda ids: BatchExecutor(self).run(ids),
            size=self.settings.batch_size,
            timeout_s=self.settings.batch_timeout_ms / 1000,
            on_flush=_log_flush,
            company=held_job_ids,
        )

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        alert_sink: AlertSink | None = None,
        job_threads: int | None = None,
    ) -> WorkerContext:
        """`job_threads`: the worker's real concurrency (`-c`, or the autoscale maximum), so
        provider calls in flight are never capped below the jobs in hand."""
        client = redis.Redis.from_url(settings.redis_url, health_check_interval=30)
        sessions = get_sessionmaker(settings.resolved_database_url)
        cache = TieredCache.from_settings(settings, sessions)
        cache.start_listener(wait_s=0)
        gate = BudgetGate(sessions, settings, alert_sink=alert_sink)
        return cls(
            settings=settings,
            sessions=sessions,
            redis=client,
            results=ResultStore(client, ttl_s=settings.result_ttl_s),
            provider=build_provider(settings),
            gate=gate,
            cache=cache,
            offpeak=OffPeakSchedule.from_settings(settings),
            pending_answers=PendingAnswers(client, ttl_s=settings.effective_visibility_timeout_s),
            calls=ThreadPoolExecutor(
                max_workers=max(settings.worker_concurrency, job_threads or 0),
                thread_name_prefix="aq-call",
            ),
            metrics=JobMetrics(
                enabled=settings.metrics_port > 0,
                sessions=sessions,
                prices=gate.prices,
                planner=gate.planner,
            ),
        )

    def memory_releasers(self) -> list[Callable[[float], object]]:
        """What the memory guard may shrink under pressure (given the share to give back)."""
        return [self.cache.l1.shrink]

    def close(self) -> None:
        self.cache.close()
        self.calls.shutdown(wait=True)
        self.provider.close()
        self.redis.close()


_lock = threading.Lock()
_contexts: dict[int, WorkerContext] = {}
_job_threads: int | None = None


def set_job_threads(count: int | None) -> None:
    """Told at worker start: how many jobs this process may hold at once."""
    global _job_threads
    _job_threads = count


def current_context() -> WorkerContext:
    """The context of this process, built on first use (so after any fork)."""
    pid = os.getpid()
    context = _contexts.get(pid)
    if context is None:
        with _lock:
            context = _contexts.get(pid)
            if context is None:
                from agentqueue.workers.alert_events import send_alert_event

                context = WorkerContext.build(
                    get_settings(), alert_sink=send_alert_event, job_threads=_job_threads
                )
                _contexts[pid] = context
    return context


def close_current_context() -> None:
    with _lock:
        context = _contexts.pop(os.getpid(), None)
    if context is not None:
        context.close()
