"""Shared clients of one worker process, built once and handed to the executor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from sqlalchemy.orm import Session, sessionmaker

from agentqueue.budget.alerts import AlertSink
from agentqueue.budget.gate import BudgetGate
from agentqueue.cache.tiered import TieredCache
from agentqueue.metrics.job_metrics import JobMetrics
from agentqueue.persistence.engine import get_sessionmaker
from agentqueue.providers import Provider, build_provider
from agentqueue.providers.batch_base import BatchAPI
from agentqueue.providers.factory import build_batch_api
from agentqueue.ratelimit.served_models import ServedModels
from agentqueue.results import ResultStore
from agentqueue.scheduler.windows import OffPeakSchedule
from agentqueue.settings import Settings
from agentqueue.workers.answer_journal import AnswerJournal
from agentqueue.workers.call_guard import CallGuard
from agentqueue.workers.call_threads import CallThreads
from agentqueue.workers.group_commit import GroupCommit
from agentqueue.workers.lease_keeper import LeaseKeeper
from agentqueue.workers.pending_answers import PendingAnswers


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
    journal: AnswerJournal
    calls: CallThreads = field(repr=False)
    guard: CallGuard = field(repr=False)
    served: ServedModels = field(repr=False)
    leases: LeaseKeeper = field(repr=False)
    metrics: JobMetrics = field(default_factory=lambda: JobMetrics(enabled=False), repr=False)
    batch_api: BatchAPI | None = None
    group_commit: GroupCommit = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.group_commit = GroupCommit(self.sessions, self.gate, self.leases)

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
        provider = build_provider(settings)
        gate = BudgetGate(sessions, settings, alert_sink=alert_sink)
        served = ServedModels.from_settings(settings, getattr(provider, "list_models", None))
        served.refresh_if_due()  # read at start, then every few minutes when asked
        gate.planner.serves = served.serves
        return cls(
            settings=settings,
            sessions=sessions,
            redis=client,
            results=ResultStore(client, ttl_s=settings.result_ttl_s),
            provider=provider,
            gate=gate,
            cache=cache,
            offpeak=OffPeakSchedule.from_settings(settings),
            journal=AnswerJournal(
                sessions, PendingAnswers(client, ttl_s=settings.effective_visibility_timeout_s)
            ),
            leases=LeaseKeeper(sessions, lease_s=settings.job_lease_s),
            calls=CallThreads(max(settings.worker_concurrency, job_threads or 0)),
            batch_api=build_batch_api(settings),
            guard=CallGuard.build(settings, client, provider),
            served=served,
            metrics=JobMetrics(
                enabled=settings.metrics_port > 0,
                sessions=sessions,
                prices=gate.prices,
                planner=gate.planner,
            ),
        )

    @property
    def offpeak_tier(self) -> str:
        """The tier released deferred work asks for: a provider batch where there is a batch
        API, else flex (each falls back where the model has no such price)."""
        return "batch" if self.batch_api is not None else "flex"

    def memory_releasers(self) -> list[Callable[[float], object]]:
        """What the memory guard may shrink under pressure (given the share to give back)."""
        return [self.cache.l1.shrink]

    def close(self) -> None:
        self.leases.stop()
        self.cache.close()
        self.calls.shutdown()
        self.provider.close()
        if self.batch_api is not None:
            self.batch_api.close()
        self.redis.close()
