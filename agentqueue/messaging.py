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


class PublishFailed(Exception):
    """Publishing stopped part-way: `sent` jobs went out; the rest (`unsent`) did not, or the
    message that failed may or may not have (its jobs are among `unsent`)."""

    def __init__(self, sent: Sequence[JobRef], unsent: Sequence[JobRef], cause: Exception):
        super().__init__(f"{len(sent)} job(s) sent, {len(unsent)} not: {type(cause).__name__}")
        self.sent = list(sent)
        self.unsent = list(unsent)
        self.cause = cause


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
        """Publish; returns how many jobs were sent.

        `released` marks jobs coming back from deferral (they must not be deferred again).

        Raises:
            PublishFailed: the broker failed part-way; it says which jobs went out.
        """
        if not jobs:
            return 0
        messages = [[job] for job in jobs] if not packed else pack(jobs, self.packed_batch_size)
        sent: list[JobRef] = []
        try:
            with self.celery.producer_or_acquire() as producer:
                for chunk in messages:
                    self._send_one(chunk, packed, service_tier, released, producer)
                    sent.extend(chunk)
        except Exception as error:
            done = {job.job_id for job in sent}
            raise PublishFailed(sent, [j for j in jobs if j.job_id not in done], error) from error
        return len(sent)

    def _send_one(
        self,
        chunk: Sequence[JobRef],
        packed: bool,
        service_tier: str,
        released: bool,
        producer: Any,
    ) -> None:
        first = chunk[0]
        if not packed:
            self.celery.send_task(
                TASK_RUN_JOB,
                args=[first.job_id, first.agent_type, first.model],
                task_id=first.job_id,
                queue=queue_for(first.priority),
                producer=producer,
            )
            return
        self.celery.send_task(
            TASK_RUN_BATCH,
            args=[[j.job_id for j in chunk], first.agent_type, first.model, service_tier, released],
            queue=queue_for(first.priority),
            producer=producer,
        )
