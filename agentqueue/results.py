"""Final results in Redis for fast waiting; SQL stays the system of record.

Publishing a result also pushes a token on the job's ready list, so a client blocked on
that list (BLPOP) wakes within one Redis round trip instead of polling. A group's results go
as one script (one command, whatever the group's size: redis-py spends more CPU on each
command of a pipeline than Redis spends running them).
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from agentqueue.constants import (
    RESULT_KEY_PREFIX,
    RESULT_READY_PREFIX,
    RESULT_READY_TTL_S,
    RESULT_READY_WATCH_MAX,
)
from agentqueue.jobs import JobResult


def result_key(job_id: str) -> str:
    return f"{RESULT_KEY_PREFIX}{job_id}"


def ready_key(job_id: str) -> str:
    return f"{RESULT_READY_PREFIX}{job_id}"


# KEYS: n result keys, then their n ready lists; ARGV: the result TTL, the ready lists' TTL,
# then the n results. EVAL rather than EVALSHA: Redis keeps the compiled script by its hash
# all the same, and a restarted Redis needs no reload (no NOSCRIPT to handle in a pipeline).
_PUBLISH = """
local n = #ARGV - 2
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[i + 2], 'EX', ARGV[1])
  redis.call('RPUSH', KEYS[n + i], 1)
  redis.call('EXPIRE', KEYS[n + i], ARGV[2])
end
return n
"""


class ResultStore:
    """Publishes final results under expiring keys and reads many of them in one round trip."""

    def __init__(self, client: redis.Redis, *, ttl_s: int) -> None:
        self.client = client
        self.ttl_s = ttl_s

    def publish(
        self, results: Sequence[JobResult], *, pipe: redis.client.Pipeline | None = None
    ) -> None:
        """Publish `results`; with `pipe`, only queued there (its owner executes it)."""
        if not results:
            return
        keys = [result_key(r.job_id) for r in results] + [ready_key(r.job_id) for r in results]
        values = [r.model_dump_json(exclude_none=True) for r in results]
        ttls = (self.ttl_s, min(self.ttl_s, RESULT_READY_TTL_S))
        (pipe if pipe is not None else self.client).eval(_PUBLISH, len(keys), *keys, *ttls, *values)

    def fetch(self, job_ids: Sequence[str]) -> dict[str, JobResult]:
        if not job_ids:
            return {}
        values = self.client.mget([result_key(i) for i in job_ids])
        return {
            job_id: JobResult.model_validate_json(value)
            for job_id, value in zip(job_ids, values, strict=True)
            if value is not None
        }

    def wait_ready(self, job_ids: Sequence[str], timeout_s: float) -> bool:
        """Block until one of `job_ids` is published or `timeout_s` passes; True if one was.

        The token taken is put back, so every other client waiting for that job wakes too.
        """
        if not job_ids or timeout_s <= 0:
            return False
        keys = [ready_key(i) for i in job_ids[:RESULT_READY_WATCH_MAX]]
        popped = self.client.blpop(keys, timeout=max(timeout_s, 0.001))
        if popped is None:
            return False
        key = popped[0]
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(key, 1)
        pipe.expire(key, RESULT_READY_TTL_S)
        pipe.execute()
        return True
