"""Worker start-up and shutdown: migrations, per-process clients, orderly close."""

from __future__ import annotations

import logging
from typing import Any

from celery import signals

from agentqueue.persistence.engine import dispose_all, is_sqlite
from agentqueue.persistence.migrate import upgrade
from agentqueue.settings import get_settings
from agentqueue.workers.context import close_current_context, current_context

log = logging.getLogger(__name__)


@signals.worker_init.connect
def _migrate_on_start(**_: Any) -> None:
    settings = get_settings()
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
def _warm_up(**_: Any) -> None:
    current_context()


@signals.worker_shutdown.connect
def _close(**_: Any) -> None:
    close_current_context()
    dispose_all()
