"""Bare Celery baseline: a no-op task on the same broker settings agentqueue uses."""

from __future__ import annotations

from celery import Celery

from agentqueue.settings import get_settings
from agentqueue.workers.config import celery_config

app = Celery("noop")
_config = celery_config(get_settings())
_config["task_queues"] = None
_config["task_create_missing_queues"] = True
app.config_from_object(_config)


@app.task(name="bench.noop", acks_late=True, ignore_result=True)
def noop(job_id: str) -> None:
    return None
