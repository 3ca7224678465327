"""Bare Celery baseline: a no-op task on the same broker settings agentqueue uses."""

from __future__ import annotations

from celery import Celery

from agentqueue.settings import get_settings
from agentqueue.workers.config import celery_config

app = Celery("noop")
_config = celery_config(get_settings())
_config["task_queues"] = None
_config["task_create_missing_queues"] = True
# Celery as shipped: its own consumer and kombu's own Redis transport, not agentqueue's guarded
# ones (which also share one Redis client per pool, see workers/message_guard.py).
del _config["worker_consumer"]
app.config_from_object(_config)


@app.task(name="bench.noop", acks_late=True, ignore_result=True)
def noop(job_id: str) -> None:
    return None
