"""Celery configuration derived from `Settings`, with the reliability defaults spelled out."""

from __future__ import annotations

from typing import Any

from kombu import Queue

from agentqueue.constants import QUEUES, TASK_RUN_BATCH, TASK_RUN_JOB
from agentqueue.settings import Settings
from agentqueue.workers.beat_schedule import BEAT_SCHEDULE


def celery_broker_url(redis_url: str) -> str:
    """kombu spells Redis unix sockets `redis+socket://`; redis-py spells them `unix://`."""
    if redis_url.startswith("unix://"):
        path, _, query = redis_url[len("unix://") :].partition("?")
        db = dict(part.split("=", 1) for part in query.split("&") if "=" in part).get("db", "0")
        return f"redis+socket://{path}?virtual_host={db}"
    return redis_url


RESIZABLE_THREADS_POOL = "agentqueue.workers.thread_pool:ResizableThreadPool"
AUTOSCALER = "agentqueue.workers.autoscaler:AgentQueueAutoscaler"
# Rejects (acks and logs) messages no worker can handle instead of dying on them.
GUARDED_CONSUMER = "agentqueue.workers.message_guard:GuardedConsumer"


def celery_pool(name: str) -> str:
    """Our `threads` is Celery's threads pool plus grow/shrink, so the autoscaler can act."""
    return RESIZABLE_THREADS_POOL if name == "threads" else name


def celery_config(settings: Settings) -> dict[str, Any]:
    visibility = settings.effective_visibility_timeout_s
    transport_options = {
        # Unacked messages come back after this; it must outlive the longest job, or a slow
        # job would run twice. Also the upper bound of any retry countdown.
        "visibility_timeout": visibility,
        "socket_keepalive": True,
        "health_check_interval": 30,
    }
    return {
        "broker_url": celery_broker_url(settings.redis_url),
        "broker_transport_options": transport_options,
        "result_backend_transport_options": {"visibility_timeout": visibility},
        "visibility_timeout": visibility,
        "broker_connection_retry_on_startup": True,
        # JSON only: a pickle message is refused, never deserialized.
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # Results live in our jobs table and result keys, not in Celery's backend.
        "task_ignore_result": True,
        # Ack after the work, and requeue if the worker dies mid-job: safe because every
        # step is idempotent by job id (claim, reservation, final record).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        # A malformed or hostile message is acknowledged and logged, never restored: a message
        # that kills the worker would come back and kill every worker after it.
        "worker_consumer": GUARDED_CONSUMER,
        "worker_prefetch_multiplier": settings.worker_prefetch_multiplier,
        # Jobs wait on the network; threads give many in flight per process.
        "worker_pool": celery_pool(settings.worker_pool),
        "worker_concurrency": settings.worker_concurrency,
        # Used when a worker runs with --autoscale (every `agentqueue worker --pool NAME`).
        "worker_autoscaler": AUTOSCALER,
        # Flower and `agentqueue stats` see every job.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_queues": [Queue(name, routing_key=name) for name in QUEUES],
        "task_default_queue": "agentqueue.normal",
        "task_create_missing_queues": False,
        "task_routes": {
            TASK_RUN_JOB: {"queue": "agentqueue.normal"},
            TASK_RUN_BATCH: {"queue": "agentqueue.low"},
        },
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "beat_schedule": BEAT_SCHEDULE,
        "timezone": settings.timezone,
        "enable_utc": True,
    }
