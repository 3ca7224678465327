"""Build a Celery app for given settings (clients build their own; workers use `workers.app`)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from agentqueue.settings import Settings, get_settings
from agentqueue.workers.config import celery_config
from agentqueue.workers.message_guard import guarded

# Every task's messages are checked before Celery reserves them (see workers/message_guard.py).
GUARDED_TASK = "agentqueue.workers.message_guard:GuardedTask"
TASK_MODULES = ["agentqueue.tasks.run_job", "agentqueue.tasks.run_batch", "agentqueue.tasks.beat"]


class GuardedCelery(Celery):
    """Every broker connection of the app is on the guarded transport (workers/message_guard.py)."""

    def connection_for_read(self, url: str | None = None, **kwargs: Any) -> Any:
        return guarded(super().connection_for_read(url, **kwargs))

    def connection_for_write(self, url: str | None = None, **kwargs: Any) -> Any:
        return guarded(super().connection_for_write(url, **kwargs))


def create_app(settings: Settings | None = None) -> Celery:
    """A Celery app for `settings` (default: the process settings)."""
    celery_app = GuardedCelery(
        "agentqueue", include=TASK_MODULES, set_as_current=settings is None, task_cls=GUARDED_TASK
    )
    celery_app.config_from_object(celery_config(settings or get_settings()))
    return celery_app
