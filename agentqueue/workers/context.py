"""Shared clients of one worker process, built once and handed to the executor."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import redis
from sqlalchemy.orm import Session, sessionmaker

from agentqueue.persistence.engine import get_sessionmaker
from agentqueue.providers import Provider, build_provider
from agentqueue.results import ResultStore
from agentqueue.settings import Settings, get_settings


@dataclass
class WorkerContext:
    """Everything a job needs that is expensive to create: one of each per process."""

    settings: Settings
    sessions: sessionmaker[Session]
    redis: redis.Redis
    results: ResultStore
    provider: Provider
    calls: ThreadPoolExecutor = field(repr=False)

    @classmethod
    def build(cls, settings: Settings) -> WorkerContext:
        client = redis.Redis.from_url(settings.redis_url, health_check_interval=30)
        return cls(
            settings=settings,
            sessions=get_sessionmaker(settings.resolved_database_url),
            redis=client,
            results=ResultStore(client, ttl_s=settings.result_ttl_s),
            provider=build_provider(settings),
            calls=ThreadPoolExecutor(
                max_workers=settings.worker_concurrency, thread_name_prefix="aq-call"
            ),
        )

    def close(self) -> None:
        self.calls.shutdown(wait=True)
        self.provider.close()
        self.redis.close()


_lock = threading.Lock()
_contexts: dict[int, WorkerContext] = {}


def current_context() -> WorkerContext:
    """The context of this process, built on first use (so after any fork)."""
    pid = os.getpid()
    context = _contexts.get(pid)
    if context is None:
        with _lock:
            context = _contexts.get(pid)
            if context is None:
                context = WorkerContext.build(get_settings())
                _contexts[pid] = context
    return context


def close_current_context() -> None:
    with _lock:
        context = _contexts.pop(os.getpid(), None)
    if context is not None:
        context.close()
