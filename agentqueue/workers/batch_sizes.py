"""How big the in-worker groups really were: per `(agent_type, model)`, a count of the groups
flushed at each size, kept in Redis so every worker process adds to the same numbers."""

from __future__ import annotations

import logging
from collections import Counter

import redis

from agentqueue.constants import BATCH_SIZES_PREFIX
from agentqueue.workers.aggregator import BatchKey, FlushRecord

log = logging.getLogger(__name__)


def _key(batch: BatchKey) -> str:
    return f"{BATCH_SIZES_PREFIX}{batch[0]}:{batch[1]}"


class BatchSizes:
    """`record` is the aggregator's flush hook; `read` gives the sizes seen so far."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def record(self, flush: FlushRecord) -> None:
        try:
            self.client.hincrby(_key(flush.key), str(flush.size), 1)
        except redis.RedisError as exc:  # statistics must never fail a job
            log.debug("could not record a batch size: %s", type(exc).__name__)

    def read(self, batch: BatchKey) -> Counter[int]:
        """How many groups of each size were flushed for `batch`."""
        counts = self.client.hgetall(_key(batch))
        return Counter({int(size): int(count) for size, count in counts.items()})
