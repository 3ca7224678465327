"""Bare Celery round trip: a task whose result comes back through a Redis result backend."""

from __future__ import annotations

from celery import Celery

from agentqueue.settings import get_settings
from agentqueue.workers.config import celery_config

_settings = get_settings()
app = Celery("roundtrip")
_config = celery_config(_settings)
_config["task_queues"] = None
_config["task_create_missing_queues"] = True
# Celery as shipped: its own consumer and kombu's own Redis transport, not agentqueue's guarded
# ones (which also share one Redis client per pool, see workers/message_guard.py).
del _config["worker_consumer"]
_config["result_backend"] = _settings.redis_url
app.config_from_object(_config)


@app.task(name="bench.echo", acks_late=True)
def echo(job_id: str) -> str:
    return job_id
