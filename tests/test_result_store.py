"""`ResultStore` on a real Redis: a group's results go out in one command, each under its
result key with the store's TTL, each with one wake-up token on its ready list (whose TTL is
capped), and, given a pipeline, only when the pipeline's owner executes it."""

from __future__ import annotations

import redis

from agentqueue.constants import RESULT_READY_TTL_S
from agentqueue.jobs import JobResult, JobStatus
from agentqueue.results import ResultStore, ready_key, result_key


def results(count: int) -> list[JobResult]:
    return [
        JobResult(job_id=f"job-{n}", status=JobStatus.SUCCEEDED, output=f"answer {n} \u00e9")
        for n in range(count)
    ]


def test_a_groups_results_are_kept_with_their_ttl_and_one_token_each(redis_url: str) -> None:
    """Given a store with a one-hour TTL, when a group of five results is published, then each
    reads back as published, its key expires within the hour, and its ready list holds one
    token that expires after at most `RESULT_READY_TTL_S`."""
    client = redis.Redis.from_url(redis_url)
    store = ResultStore(client, ttl_s=3600)
    published = results(5)

    store.publish(published)

    assert store.fetch([r.job_id for r in published]) == {r.job_id: r for r in published}
    for result in published:
        assert 3590 <= client.ttl(result_key(result.job_id)) <= 3600
        assert client.lrange(ready_key(result.job_id), 0, -1) == [b"1"]
        assert RESULT_READY_TTL_S - 10 <= client.ttl(ready_key(result.job_id)) <= RESULT_READY_TTL_S


def test_a_short_ttl_bounds_the_ready_lists_too(redis_url: str) -> None:
    """Given a store whose TTL is shorter than `RESULT_READY_TTL_S`, when a result is
    published, then its ready list expires no later than the result itself."""
    client = redis.Redis.from_url(redis_url)
    store = ResultStore(client, ttl_s=30)

    store.publish(results(1))

    assert 20 <= client.ttl(ready_key("job-0")) <= 30
    assert 20 <= client.ttl(result_key("job-0")) <= 30


def test_results_queued_on_a_pipeline_go_out_when_it_is_executed(redis_url: str) -> None:
    """Given a pipeline, when a group is published on it, then nothing is visible until the
    pipeline runs, and then all of it is, in one command for the whole group."""
    client = redis.Redis.from_url(redis_url)
    store = ResultStore(client, ttl_s=3600)
    pipe = client.pipeline(transaction=False)
    published = results(40)

    store.publish(published, pipe=pipe)

    assert len(pipe.command_stack) == 1
    assert store.fetch([r.job_id for r in published]) == {}
    pipe.execute()
    assert store.fetch([r.job_id for r in published]) == {r.job_id: r for r in published}
    assert all(client.llen(ready_key(r.job_id)) == 1 for r in published)
