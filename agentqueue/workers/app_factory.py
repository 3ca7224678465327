"""Build a Celery app for given settings (clients build their own; workers use `workers.app`)."""

from __future__ import annotations

from celery import Celery

from agentqueue.settings import Settings, get_settings
from agentqueue.workers.config import celery_config

# Every task's messages are checked before Celery reserves them (see workers/message_guard.py).
GUARDED_TASK = "agentqueue.workers.message_guard:GuardedTask"
TASK_MODULES = ["agentqueue.tasks.run_job", "agentqueue.tasks.run_batch", "agentqueue.tasks.beat"]


def create_app(settings: Settings | None = None) -> Celery:
    """A Celery app for `settings` (default: the process settings)."""
    celery_app = Celery(
        "agentqueue", include=TASK_MODULES, set_as_current=settings is None, task_cls=GUARDED_TASK
    )
    celery_app.config_from_object(celery_config(settings or get_settings()))
    return celery_app
