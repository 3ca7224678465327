"""Worker start-up and shutdown: migrations, per-process clients, orderly close."""

from __future__ import annotations

import gc
import logging
import os
from typing import Any

from celery import signals

from agentqueue.metrics import multiproc
from agentqueue.persistence.engine import dispose_all, is_sqlite
from agentqueue.persistence.migrate import upgrade
from agentqueue.settings import get_settings
from agentqueue.workers.lost_jobs import send_lost_jobs
from agentqueue.workers.memory_guard import MemoryGuard
from agentqueue.workers.runtime import close_current_context, current_context, set_job_threads

log = logging.getLogger(__name__)


@signals.worker_init.connect
def _migrate_on_start(sender: Any = None, **_: Any) -> None:
    # The worker's own size (-c, or the autoscale maximum) bounds the calls it may hold.
    limits = [getattr(sender, "concurrency", None), getattr(sender, "max_concurrency", None)]
    set_job_threads(max((int(n) for n in limits if n), default=None))
    settings = get_settings()
    if settings.metrics_port:
        # Before any metric exists: every process of this worker writes to one directory.
        multiproc.prepare(wipe=False)
    if settings.auto_migrate:
        upgrade(settings.resolved_database_url)
        log.info(
            "database schema is current (%s)",
            "sqlite" if is_sqlite(settings.resolved_database_url) else "postgresql",
        )


@signals.worker_process_init.connect
def _fresh_clients_after_fork(**_: Any) -> None:
    # A forked child must not share its parent's sockets.
    dispose_all()
    current_context()


@signals.worker_ready.connect
def _warm_up(sender: Any = None, **_: Any) -> None:
    context = current_context()
    settings = context.settings
    celery_app = getattr(sender, "app", None)
    if celery_app is not None:
        context.leases.start(
            sweeps={
                "send lost jobs again": lambda: send_lost_jobs(context, celery_app),
                "drop the answers of ended jobs": lambda: context.journal.drop_finished(
                    older_than_s=settings.job_lease_s
                ),
            }
        )
    if settings.worker_max_memory_mb:
        guard = MemoryGuard.for_limit(
            settings.worker_max_memory_mb,
            soft_fraction=settings.worker_memory_soft_fraction,
            interval_s=settings.worker_memory_check_s,
        )
        guard.on_soft.extend(context.memory_releasers())
        guard.start()
    if settings.metrics_port:
        from agentqueue.metrics.server import build_registry, serve

        registry = build_registry(settings, context.sessions, worker_counters=True)
        serve(registry, settings.metrics_port, settings.metrics_address)
    # What is loaded by now lives as long as the process: out of the collector's sight, so
    # neither the full collections while jobs run nor the one at exit walk it again.
    gc.freeze()


@signals.worker_process_shutdown.connect
def _forget_process_metrics(pid: int | None = None, **_: Any) -> None:
    multiproc.mark_dead(pid or os.getpid())


@signals.worker_shutdown.connect
def _close(**_: Any) -> None:
    close_current_context()
    dispose_all()
