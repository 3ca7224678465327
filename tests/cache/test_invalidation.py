"""Invalidation by key and by tag across L2, L3 and the L1 of every worker process."""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

import pytest
import redis

from agentqueue.cache import listener as listener_module
from agentqueue.cache.base import InvalidationTarget
from agentqueue.cache.invalidation import decode_message, encode_message
from agentqueue.cache.l2_redis import entry_key
from tests.cache import processes
from tests.cache.conftest import CacheFactory
from tests.cache.support import answer, make_job, make_settings, request_for
from tests.cache.test_tiered import in_l3

ALL_TIERS = {"cache_agent_response_tiers": "l1,l2,l3"}


def ask(conn: Connection, command: str) -> Any:
    conn.send(command)
    assert conn.poll(30), f"worker did not answer {command!r}"
    return conn.recv()


def eventually(check: Any, timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return bool(check())


@pytest.fixture
def two_workers(redis_url: str, sqlite_url: str) -> Iterator[list[Connection]]:
    """Two spawned processes, each with its own TieredCache (all tiers) and listener."""
    context = multiprocessing.get_context("spawn")
    pipes, workers = [], []
    for _ in range(2):
        ours, theirs = context.Pipe()
        worker = context.Process(
            target=processes.l1_holder, args=(redis_url, sqlite_url, ALL_TIERS, theirs)
        )
        worker.start()
        pipes.append(ours)
        workers.append(worker)
    yield pipes
    for pipe in pipes:
        with contextlib.suppress(OSError, EOFError, AssertionError):
            ask(pipe, "stop")
    for worker in workers:
        worker.join(timeout=20)
        if worker.exitcode is None:
            worker.kill()


def test_tag_invalidation_clears_l2_l3_and_the_l1_of_two_other_processes(
    make_cache: CacheFactory, redis_url: str, sqlite_url: str, two_workers: list[Connection]
) -> None:
    # Given an entry in L2 and L3, and two worker processes that each looked it up (so it sits
    # in both their L1s), When this process invalidates by tenant, Then L2 and L3 lose it and
    # both workers' L1s drop it within moments, so their next lookup misses.
    cache = make_cache(sqlite_url, **ALL_TIERS)
    request = request_for(make_job(), make_settings(redis_url, **ALL_TIERS))
    cache.store(request, answer())
    for worker in two_workers:
        assert ask(worker, "lookup") in ("l2", "l3")
        assert ask(worker, "in_l1") is True
    client = redis.Redis.from_url(redis_url)
    assert client.exists(entry_key(request.key)) and in_l3(sqlite_url, request.key)

    assert cache.invalidate_tags(tenant="acme") == 1

    assert not client.exists(entry_key(request.key))
    assert not in_l3(sqlite_url, request.key)
    assert cache.l1.get_many([request.key]) == [None]
    for worker in two_workers:
        assert eventually(lambda w=worker: ask(w, "in_l1") is False)
        assert ask(worker, "lookup") is None


def test_key_invalidation_reaches_other_processes_and_spares_other_keys(
    make_cache: CacheFactory, redis_url: str, sqlite_url: str, two_workers: list[Connection]
) -> None:
    cache = make_cache(sqlite_url, **ALL_TIERS)
    settings = make_settings(redis_url, **ALL_TIERS)
    request = request_for(make_job(), settings)
    other = request_for(make_job(tenant="globex"), settings)
    cache.store_many([(request, answer()), (other, answer("globex answer"))])
    for worker in two_workers:
        assert ask(worker, "lookup") is not None
    cache.invalidate_key(request.key)
    for worker in two_workers:
        assert eventually(lambda w=worker: ask(w, "in_l1") is False)
    assert cache.lookup(other).entry.output == "globex answer"  # type: ignore[union-attr]


def test_tags_combine_and_count(make_cache: CacheFactory, redis_url: str, sqlite_url: str) -> None:
    # Given entries across tenants, agent types and models, When invalidating with several
    # tags, Then only entries matching all of them go, in every tier.
    cache = make_cache(sqlite_url, **ALL_TIERS)
    settings = make_settings(redis_url, **ALL_TIERS)
    jobs = {
        "acme-support-mini": request_for(make_job(), settings),
        "acme-support-4o": request_for(make_job(), settings, model="gpt-4o"),
        "acme-billing-mini": request_for(make_job(agent_type="billing"), settings),
        "globex-support-mini": request_for(make_job(tenant="globex"), settings),
    }
    cache.store_many([(r, answer(name)) for name, r in jobs.items()])
    assert cache.invalidate_tags(tenant="acme", model="gpt-4o-mini") == 2
    left = {name for name, r in jobs.items() if cache.lookup(r).hit}
    assert left == {"acme-support-4o", "globex-support-mini"}
    cache.l1.clear()
    left = {name for name, r in jobs.items() if cache.lookup(r).hit}
    assert left == {"acme-support-4o", "globex-support-mini"}
    assert cache.invalidate_tags(agent_type="support") == 2
    assert not any(cache.lookup(r).hit for r in jobs.values())
    with pytest.raises(ValueError):
        cache.invalidate_tags()


def test_a_listener_that_lost_its_subscription_empties_its_l1(
    make_cache: CacheFactory, redis_url: str, sqlite_url: str
) -> None:
    # Given a listener whose pub/sub connection is killed (invalidations may have been missed),
    # When it resubscribes, Then it clears its L1 rather than serve possibly stale entries.
    cache = make_cache(sqlite_url)
    assert cache.start_listener()
    request = request_for(make_job(), make_settings(redis_url))
    cache.store(request, answer())
    assert len(cache.l1) == 1
    listener = cache._listener
    assert listener is not None and listener.subscribed
    # Kill only pub/sub connections on this test's own database (other suites share the server).
    client = redis.Redis.from_url(redis_url)
    db = str(client.get_connection_kwargs()["db"])
    ours = [info["id"] for info in client.client_list(_type="pubsub") if info.get("db") == db]
    assert ours
    for client_id in ours:
        client.client_kill_filter(_id=client_id)
    assert eventually(lambda: len(cache.l1) == 0, timeout_s=5)
    assert eventually(lambda: listener.subscribed, timeout_s=5)
    # And it works again: an invalidation from elsewhere reaches it.
    cache.store(request, answer())
    other = make_cache(sqlite_url)
    other.invalidate_key(request.key)
    assert eventually(lambda: len(cache.l1) == 0)


def test_invalidation_messages_round_trip() -> None:
    target = InvalidationTarget(tenant="acme", model="gpt-4o")
    assert decode_message(encode_message(target, origin="w1")) == ("w1", target)
    keys = InvalidationTarget(keys=("k1", "k2"))
    assert decode_message(encode_message(keys, origin="w2")) == ("w2", keys)
    with pytest.raises(ValueError):
        decode_message(b'{"origin": "w3"}')


def test_stopping_a_listener_wakes_it_from_its_wait_for_a_message(
    make_cache: CacheFactory, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a listener waiting for a message far longer than the stop allows (a worker's
    # shutdown waited out this wait), When it is stopped, Then its thread has ended already.
    monkeypatch.setattr(listener_module, "POLL_S", 60.0)
    cache = make_cache(sqlite_url)
    assert cache.start_listener()
    listener = cache._listener
    assert listener is not None and listener._thread is not None
    thread = listener._thread
    time.sleep(0.2)  # inside its wait for the next message
    listener.stop(wait_s=10)
    assert not thread.is_alive()
