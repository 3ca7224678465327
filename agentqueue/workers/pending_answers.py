"""Paid-for answers waiting for the ledger: a retry settles them instead of calling again."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import redis

from agentqueue.cache.entry import EntryDecodeError
from agentqueue.constants import (
    CARRIED_CALLS_PREFIX,
    PENDING_ANSWER_INDEX_KEY,
    PENDING_ANSWER_PREFIX,
)
from agentqueue.workers.kept_answer import KeptAnswer

# KEYS: the index, then the n answer keys; ARGV: the TTL, the time kept, then the n job ids
# and the n answers (one command for a group's answers; see `agentqueue.results`).
_KEEP = """
local n = (#ARGV - 2) / 2
for i = 1, n do
  redis.call('SET', KEYS[i + 1], ARGV[n + i + 2], 'EX', ARGV[1])
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[i + 2])
end
return n
"""


class PendingAnswers:
    """One key per job's answer (with a TTL), and an index of them by the time they were kept
    (`PENDING_ANSWER_INDEX_KEY`), written and dropped in the same round trip as the keys."""

    def __init__(self, client: redis.Redis, *, ttl_s: int) -> None:
        self.client = client
        self.ttl_s = ttl_s

    def keep(self, answers: Mapping[str, KeptAnswer]) -> None:
        if not answers:
            return
        ids = list(answers)
        keys = [PENDING_ANSWER_INDEX_KEY, *(f"{PENDING_ANSWER_PREFIX}{i}" for i in ids)]
        values = [entry.to_json() for entry in answers.values()]
        self.client.eval(_KEEP, len(keys), *keys, self.ttl_s, repr(time.time()), *ids, *values)

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

    def forget(self, job_ids: Sequence[str], *, pipe: redis.client.Pipeline | None = None) -> None:
        """Drop these answers; with `pipe`, only queued there (its owner executes it)."""
        if not job_ids:
            return
        queued = pipe if pipe is not None else self.client.pipeline(transaction=False)
        queued.delete(*[f"{PENDING_ANSWER_PREFIX}{i}" for i in job_ids])
        queued.zrem(PENDING_ANSWER_INDEX_KEY, *job_ids)
        if pipe is None:
            queued.execute()

    def keep_carried(self, counts: Mapping[str, int]) -> None:
        """Calls of unknown outcome jobs leave to their next attempt (job id -> how many; 0
        drops a job's count)."""
        if not counts:
            return
        pipe = self.client.pipeline(transaction=False)
        for job_id, calls in counts.items():
            if calls > 0:
                pipe.set(f"{CARRIED_CALLS_PREFIX}{job_id}", calls, ex=self.ttl_s)
            else:
                pipe.delete(f"{CARRIED_CALLS_PREFIX}{job_id}")
        pipe.execute()

    def take_carried(self, job_ids: Sequence[str]) -> dict[str, int]:
        """The counts kept for these jobs (they stay until an attempt replaces or drops them)."""
        if not job_ids:
            return {}
        values = self.client.mget([f"{CARRIED_CALLS_PREFIX}{i}" for i in job_ids])
        found: dict[str, int] = {}
        for job_id, value in zip(job_ids, values, strict=True):
            if isinstance(value, bytes) and value.isdigit():
                found[job_id] = int(value)
        return found

    def kept_before(self, when: float, *, limit: int) -> list[str]:
        """Jobs whose answer was kept (or last looked at) before `when` (a Unix time), oldest
        first."""
        ids = self.client.zrangebyscore(PENDING_ANSWER_INDEX_KEY, "-inf", when, 0, limit)
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    def still_needed(self, job_ids: Sequence[str]) -> None:
        """These jobs may still settle from their answers: look at them again one period
        from now; those whose answer has expired leave the index."""
        if not job_ids:
            return
        pipe = self.client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.exists(f"{PENDING_ANSWER_PREFIX}{job_id}")
        found = pipe.execute()
        expired = [i for i, n in zip(job_ids, found, strict=True) if not n]
        live = [i for i, n in zip(job_ids, found, strict=True) if n]
        pipe = self.client.pipeline(transaction=False)
        if expired:
            pipe.zrem(PENDING_ANSWER_INDEX_KEY, *expired)
        if live:
            pipe.zadd(PENDING_ANSWER_INDEX_KEY, dict.fromkeys(live, time.time()), xx=True)
        pipe.execute()
