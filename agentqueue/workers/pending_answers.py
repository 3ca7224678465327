"""Paid-for answers waiting for the ledger: a retry settles them instead of calling again."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import redis

from agentqueue.cache.entry import EntryDecodeError
from agentqueue.constants import PENDING_ANSWER_PREFIX
from agentqueue.workers.kept_answer import KeptAnswer


class PendingAnswers:
    def __init__(self, client: redis.Redis, *, ttl_s: int) -> None:
        self.client = client
        self.ttl_s = ttl_s

    def keep(self, answers: Mapping[str, KeptAnswer]) -> None:
        if not answers:
            return
        pipe = self.client.pipeline(transaction=False)
        for job_id, entry in answers.items():
            pipe.set(f"{PENDING_ANSWER_PREFIX}{job_id}", entry.to_json(), ex=self.ttl_s)
        pipe.execute()

    def take(self, job_ids: Sequence[str]) -> dict[str, KeptAnswer]:
        """Answers kept for these jobs (they stay until `forget`, in case settling fails again)."""
        if not job_ids:
            return {}
        values = self.client.mget([f"{PENDING_ANSWER_PREFIX}{i}" for i in job_ids])
        found: dict[str, KeptAnswer] = {}
        for job_id, value in zip(job_ids, values, strict=True):
            if not isinstance(value, bytes):
                continue
            try:
                found[job_id] = KeptAnswer.from_json(value)
            except EntryDecodeError:
                continue
        return found

    def forget(self, job_ids: Sequence[str]) -> None:
        if job_ids:
            self.client.delete(*[f"{PENDING_ANSWER_PREFIX}{i}" for i in job_ids])
