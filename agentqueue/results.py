"""Final results in Redis for fast waiting; SQL stays the system of record."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from agentqueue.constants import RESULT_KEY_PREFIX
from agentqueue.jobs import JobResult


def result_key(job_id: str) -> str:
    return f"{RESULT_KEY_PREFIX}{job_id}"


class ResultStore:
    """Publishes final results under expiring keys and reads many of them in one round trip."""

    def __init__(self, client: redis.Redis, *, ttl_s: int) -> None:
        self.client = client
        self.ttl_s = ttl_s

    def publish(self, results: Sequence[JobResult]) -> None:
        if not results:
            return
        pipe = self.client.pipeline(transaction=False)
        for result in results:
            pipe.set(
                result_key(result.job_id), result.model_dump_json(exclude_none=True), ex=self.ttl_s
            )
        pipe.execute()

    def fetch(self, job_ids: Sequence[str]) -> dict[str, JobResult]:
        if not job_ids:
            return {}
        values = self.client.mget([result_key(i) for i in job_ids])
        return {
            job_id: JobResult.model_validate_json(value)
            for job_id, value in zip(job_ids, values, strict=True)
            if value is not None
        }
