"""Queue messages: what one carries (`JobRef`), which queue it goes to, and how jobs are sent.

Used by the client, beat and the demo; it takes the Celery app it sends with, so this module
itself imports no Celery.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from agentqueue.constants import QUEUE_PREFIX, TASK_RUN_BATCH, TASK_RUN_JOB


@dataclass(frozen=True, slots=True)
class JobRef:
    """The little a queue message needs: ids, never payloads (the payload lives in SQL)."""

    job_id: str
    agent_type: str
    model: str
    priority: str


class MessageSender(Protocol):
    """The part of a Celery app that sends messages."""

    def send_task(self, name: str, **options: Any) -> Any: ...

    def producer_or_acquire(self) -> AbstractContextManager[Any]: ...


def queue_for(priority: str) -> str:
    return f"{QUEUE_PREFIX}{priority}"


def pack(jobs: Sequence[JobRef], size: int) -> list[list[JobRef]]:
    """Chunks of at most `size` jobs sharing `(agent_type, model, priority)`, in input order."""
    groups: dict[tuple[str, str, str], list[JobRef]] = defaultdict(list)
    for job in jobs:
        groups[(job.agent_type, job.model, job.priority)].append(job)
    return [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]


class Dispatcher:
    """Sends run_job / run_batch messages on one producer connection."""

    def __init__(self, sender: MessageSender, *, packed_batch_size: int) -> None:
        self.celery = sender
        self.packed_batch_size = packed_batch_size

    def send(
        self,
        jobs: Sequence[JobRef],
        *,
        packed: bool,
        service_tier: str = "standard",
        released: bool = False,
    ) -> int:
        """Publish; returns how many jobs were sent before any failure (which re-raises).

        `released` marks jobs coming back from deferral (they must not be deferred again).
        """
        if not jobs:
            return 0
        sent = 0
        with self.celery.producer_or_acquire() as producer:
            if not packed:
                for job in jobs:
                    self.celery.send_task(
                        TASK_RUN_JOB,
                        args=[job.job_id, job.agent_type, job.model],
                        task_id=job.job_id,
                        queue=queue_for(job.priority),
                        producer=producer,
                    )
                    sent += 1
                return sent
            for chunk in pack(jobs, self.packed_batch_size):
                first = chunk[0]
                self.celery.send_task(
                    TASK_RUN_BATCH,
                    args=[
                        [j.job_id for j in chunk],
                        first.agent_type,
                        first.model,
                        service_tier,
                        released,
                    ],
                    queue=queue_for(first.priority),
                    producer=producer,
                )
                sent += len(chunk)
        return sent
