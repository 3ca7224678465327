"""Single-flight: identical misses at once make one provider call, across threads and across
worker processes; waits are bounded and a failed leader releases its followers."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import redis

from agentqueue.cache import TieredCache
from agentqueue.cache.l2_redis import entry_key
from agentqueue.constants import SINGLE_FLIGHT_LOCK_PREFIX
from tests.cache import processes
from tests.cache.conftest import CacheFactory
from tests.cache.support import (
    PROVIDER_CALLS_KEY,
    answer,
    make_job,
    make_settings,
    provider_call,
    request_for,
    run_job,
)


def provider_calls(redis_url: str) -> int:
    return int(redis.Redis.from_url(redis_url).get(PROVIDER_CALLS_KEY) or 0)


def test_50_identical_jobs_in_threads_make_one_provider_call(
    make_cache: CacheFactory, redis_url: str, sqlite_url: str
) -> None:
    # Given 50 threads released at once with the same job, When each looks up, misses and
    # enters single-flight, Then exactly one calls the provider and all 50 get its answer.
    cache = make_cache(sqlite_url)
    assert cache.start_listener()
    req = request_for(make_job(), make_settings(redis_url))
    start = threading.Barrier(50)

    def job(_: int) -> tuple[str, str]:
        start.wait()
        role, entry = run_job(cache, req, redis_url)
        return role, entry.output

    with ThreadPoolExecutor(50) as pool:
        outcomes = list(pool.map(job, range(50)))
    assert provider_calls(redis_url) == 1
    roles = Counter(role for role, _ in outcomes)
    assert roles["leader"] == 1 and roles["alone"] == 0
    assert len(outcomes) == 50 and {output for _, output in outcomes} == {answer().output}
    stats = cache.stats()["single_flight"]
    assert stats["leaders"] == 1 and stats["followers_served"] == roles["follower"]


def test_50_identical_jobs_across_two_processes_make_one_provider_call(
    redis_url: str, sqlite_url: str
) -> None:
    # Given two worker processes (spawned, each with its own TieredCache and listener),
    # When 25 threads in each run the same job at the same moment,
    # Then one provider call is made in total and all 50 jobs get the same answer.
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(3)
    results = context.Queue()
    workers = [
        context.Process(
            target=processes.single_flight_worker,
            args=(redis_url, sqlite_url, 25, start, results),
        )
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    try:
        start.wait(timeout=60)
        outcomes = results.get(timeout=60) + results.get(timeout=60)
    finally:
        for worker in workers:
            worker.join(timeout=30)
    assert all(worker.exitcode == 0 for worker in workers)
    assert provider_calls(redis_url) == 1
    roles = Counter(role for role, _ in outcomes)
    assert roles["leader"] == 1 and roles["alone"] == 0, roles
    assert len(outcomes) == 50 and {output for _, output in outcomes} == {answer().output}


def test_followers_in_another_process_without_a_listener_still_get_the_answer(
    make_cache: CacheFactory, redis_url: str, sqlite_url: str
) -> None:
    # Given two caches that share nothing in memory (as two processes) and no listener,
    # When both miss at once, Then the second polls the handoff and is served the answer.
    first, second = make_cache(sqlite_url), make_cache(sqlite_url)
    req = request_for(make_job(), make_settings(redis_url))
    with ThreadPoolExecutor(2) as pool:
        leader = pool.submit(run_job, first, req, redis_url)
        time.sleep(0.05)
        follower = pool.submit(run_job, second, req, redis_url)
        assert leader.result()[0] == "leader"
        assert follower.result() == ("follower", leader.result()[1])
    assert provider_calls(redis_url) == 1


def test_a_failed_leader_releases_its_followers_at_once(
    make_cache: CacheFactory, redis_url: str, sqlite_url: str
) -> None:
    # Given a leader that fails after 0.3 s and a 10 s bounded wait, When 5 followers wait
    # (3 in this process, 2 in "another"), Then they proceed alone right after the failure.
    first = make_cache(sqlite_url, cache_single_flight_wait_s=10)
    second = make_cache(sqlite_url, cache_single_flight_wait_s=10)
    assert first.start_listener() and second.start_listener()
    req = request_for(make_job(), make_settings(redis_url))
    leading = threading.Event()

    def failing_leader() -> None:
        with first.single_flight(req) as ticket:
            assert ticket.leader
            leading.set()
            time.sleep(0.3)
            raise RuntimeError("provider exploded")

    def follower(cache: TieredCache) -> tuple[str, float]:
        started = time.monotonic()
        role, _ = run_job(cache, req, redis_url)
        return role, time.monotonic() - started

    with ThreadPoolExecutor(6) as pool:
        failed = pool.submit(failing_leader)
        leading.wait(5)
        waiting = [pool.submit(follower, first) for _ in range(3)]
        waiting += [pool.submit(follower, second) for _ in range(2)]
        outcomes = [f.result() for f in waiting]
        assert isinstance(failed.exception(), RuntimeError)
    assert all(role in ("alone", "leader", "follower", "hit:l1", "hit:l2") for role, _ in outcomes)
    assert all(elapsed < 3 for _, elapsed in outcomes), outcomes
    assert not redis.Redis.from_url(redis_url).exists(f"{SINGLE_FLIGHT_LOCK_PREFIX}{req.key}")


def test_waiting_is_bounded_then_followers_proceed_alone(
    make_cache: CacheFactory, redis_url: str, sqlite_url: str
) -> None:
    # Given a leader that takes 2 s and a 0.5 s bound, Then followers call the provider
    # themselves after about 0.5 s instead of waiting for the leader.
    first = make_cache(sqlite_url, cache_single_flight_wait_s=0.5)
    second = make_cache(sqlite_url, cache_single_flight_wait_s=0.5)
    req = request_for(make_job(), make_settings(redis_url, cache_single_flight_wait_s=0.5))
    leading = threading.Event()

    def slow_leader() -> str:
        with first.single_flight(req) as ticket:
            leading.set()
            time.sleep(2)
            ticket.complete(answer())
            return "leader" if ticket.leader else "?"

    def follower(cache: TieredCache) -> tuple[bool, bool, float]:
        started = time.monotonic()
        with cache.single_flight(req) as ticket:
            return ticket.leader, ticket.entry is None, time.monotonic() - started

    with ThreadPoolExecutor(3) as pool:
        lead = pool.submit(slow_leader)
        leading.wait(5)
        local, remote = pool.submit(follower, first), pool.submit(follower, second)
        for leader, alone, elapsed in (local.result(), remote.result()):
            assert not leader and alone
            assert 0.4 < elapsed < 1.5
        assert lead.result() == "leader"
    first.flush_stats()  # the other "worker" reports in; stats() sums both
    assert second.stats()["single_flight"]["timeouts"] >= 1


def test_a_truncated_answer_is_not_handed_to_followers(
    make_cache: CacheFactory, redis_url: str, sqlite_url: str
) -> None:
    first, second = make_cache(sqlite_url), make_cache(sqlite_url)
    req = request_for(make_job(), make_settings(redis_url))
    leading, done = threading.Event(), threading.Event()

    def leader() -> None:
        with first.single_flight(req) as ticket:
            leading.set()
            time.sleep(0.2)
            ticket.complete(answer("Order 12", finish_reason="length"))
        done.set()

    with ThreadPoolExecutor(3) as pool:
        lead = pool.submit(leader)
        leading.wait(5)
        tickets = [pool.submit(lambda c: _enter(c, req), c) for c in (first, second)]
        lead.result()
        for ticket in tickets:
            assert ticket.result() == (False, None)
    assert first.lookup(req).hit is False


def test_a_late_arrival_takes_the_handoff_instead_of_calling_again(
    make_cache: CacheFactory, redis_url: str, sqlite_url: str
) -> None:
    # Given a leader that just finished, When a job that missed the cache a moment before
    # enters single-flight, Then it is served the leader's answer, not a second call.
    first, second = make_cache(sqlite_url), make_cache(sqlite_url)
    req = request_for(make_job(), make_settings(redis_url))
    assert run_job(first, req, redis_url)[0] == "leader"
    redis.Redis.from_url(redis_url).delete(entry_key(req.key))  # as if the miss came first
    with second.single_flight(req) as ticket:
        assert not ticket.leader and ticket.entry == answer().__class__.from_json(
            ticket.entry.to_json()  # type: ignore[union-attr]
        )
        assert ticket.entry is not None and ticket.entry.output == answer().output
    assert provider_calls(redis_url) == 1


def test_requests_that_may_not_share_answers_never_wait(
    make_cache: CacheFactory, redis_url: str, sqlite_url: str
) -> None:
    cache = make_cache(sqlite_url)
    settings = make_settings(redis_url)
    private = request_for(make_job(cache={"mode": "no-store"}), settings)
    with cache.single_flight(private) as outer, cache.single_flight(private) as inner:
        assert outer.leader and inner.leader
        inner.complete(provider_call(redis_url, latency_s=0))
    assert cache.lookup(request_for(make_job(), settings)).hit is False


def _enter(cache: TieredCache, req: object) -> tuple[bool, object]:
    with cache.single_flight(req) as ticket:  # type: ignore[arg-type]
        return ticket.leader, ticket.entry
