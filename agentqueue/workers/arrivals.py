"""Which `run_job` jobs hold a thread of this worker: the company a waiting job can expect.

Only jobs that already have a thread can reach the aggregator; counting prefetched messages
that wait for a thread would make a group wait for jobs that cannot come while it waits.
"""

from __future__ import annotations

from collections.abc import Iterable

from celery.worker import state

from agentqueue.constants import QUEUE_PREFIX, TASK_RUN_JOB
from agentqueue.workers.aggregator import BatchKey

URGENT_QUEUES = frozenset(f"{QUEUE_PREFIX}{p}" for p in ("critical", "high"))


def _requests() -> list[object]:
    # The consumer thread adds to these weak sets while job threads read them; a read that
    # races with an add is simply taken again.
    for _ in range(5):
        try:
            return list(state.active_requests)
        except RuntimeError:
            continue
    return []


def held_job_ids(key: BatchKey) -> list[str]:
    """Ids of the `run_job` jobs of `key` that hold a thread of this worker."""
    ids: list[str] = []
    for request in _requests():
        if getattr(request, "task_name", None) != TASK_RUN_JOB:
            continue
        args = getattr(request, "args", None)
        if isinstance(args, Iterable) and not isinstance(args, str | bytes):
            values = list(args)
            if len(values) >= 3 and (values[1], values[2]) == key and isinstance(values[0], str):
                ids.append(values[0])
    return ids


def is_urgent(delivery_info: dict[str, object] | None) -> bool:
    """Critical and high jobs never wait for company."""
    return delivery_info is not None and delivery_info.get("routing_key") in URGENT_QUEUES
