"""`PendingAnswers.keep` on a real Redis: a group's answers go in one command, each under its
own key with the journal's TTL and in the index by the time they were kept, and read back as
kept (the unknown calls included)."""

from __future__ import annotations

import time

import redis

from agentqueue.cache.entry import CacheEntry
from agentqueue.constants import PENDING_ANSWER_INDEX_KEY, PENDING_ANSWER_PREFIX
from agentqueue.workers.kept_answer import KeptAnswer
from agentqueue.workers.pending_answers import PendingAnswers


def answer(n: int, *, repeated: int = 0, carried: bool = False) -> KeptAnswer:
    entry = CacheEntry(output=f"answer {n} \u00e9", model="gpt-4o-mini", provider="openai")
    return KeptAnswer(entry, repeated, carried)


def test_a_groups_answers_are_kept_with_their_ttl_and_indexed_by_time(redis_url: str) -> None:
    """Given a journal with a one-day TTL, when three answers are kept at once, then each has
    its key with that TTL, the index holds each job at the time it was kept, and `take` gives
    back every answer as kept."""
    client = redis.Redis.from_url(redis_url)
    store = PendingAnswers(client, ttl_s=86_400)
    kept = {"a": answer(1), "b": answer(2, repeated=2), "c": answer(3, carried=True)}
    before = time.time()

    store.keep(kept)

    after = time.time()
    for job_id in kept:
        assert 86_390 <= client.ttl(f"{PENDING_ANSWER_PREFIX}{job_id}") <= 86_400
        score = client.zscore(PENDING_ANSWER_INDEX_KEY, job_id)
        assert score is not None and before - 0.01 <= score <= after + 0.01
    assert store.take(list(kept)) == kept
    assert store.kept_before(after + 1, limit=10) == sorted(kept)


def test_keeping_nothing_writes_nothing(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    PendingAnswers(client, ttl_s=60).keep({})
    assert client.dbsize() == 0
