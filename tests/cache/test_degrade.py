"""Degrade, never fail: with the cache's Redis or the L3 database unreachable, lookups and
stores return misses / do nothing, jobs still get answers, and tier errors are counted."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from agentqueue.cache import TieredCache
from agentqueue.persistence.engine import get_sessionmaker
from tests.cache.support import answer, make_job, make_settings, request_for, run_job
from tests.support.services import free_port

ALL_TIERS = {"cache_agent_response_tiers": "l1,l2,l3", "cache_tier_retry_s": 0.2}


class PrivateRedis:
    """A redis-server of our own on a free port, so the test can stop and restart it."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server binary not installed")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        for _ in range(200):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_closed_redis_port_never_raises_and_counts_errors(redis_url: str, sqlite_url: str) -> None:
    # Given a cache whose Redis URL points at a closed port, When jobs run through it,
    # Then nothing raises, jobs get answers (L1 and L3 still serve), errors are counted,
    # and the dead tier is skipped rather than retried on every call.
    dead_url = f"redis://127.0.0.1:{free_port()}/0"
    settings = make_settings(dead_url, **ALL_TIERS)
    cache = TieredCache.from_settings(settings, get_sessionmaker(sqlite_url))
    try:
        assert cache.start_listener(wait_s=0.3) is False
        request = request_for(make_job(), settings)
        started = time.monotonic()
        assert cache.lookup(request).hit is False
        role, entry = run_job(cache, request, redis_url)
        assert role == "leader" and entry.output == answer().output
        assert cache.lookup(request).tier == "l1"
        cache.l1.clear()
        assert cache.lookup(request).tier == "l3"  # L3 is independent of Redis
        assert cache.invalidate_tags(tenant="acme") >= 1
        assert time.monotonic() - started < 3
        stats = cache.stats()
        assert stats["scope"] == "this_process"
        assert stats["l2"]["errors"] >= 1
        assert stats["l3"]["errors"] == 0
    finally:
        cache.close()


def test_redis_stopping_mid_run_degrades_then_recovers(
    private_redis: PrivateRedis, redis_url: str, sqlite_url: str
) -> None:
    # Given a working cache Redis holding an answer, When that server stops, Then lookups miss
    # in L2 without raising, a job still succeeds (its answer goes to L1/L3), errors are
    # counted; When the server comes back, Then L2 is used again after the retry pause.
    settings = make_settings(private_redis.url, **ALL_TIERS)
    cache = TieredCache.from_settings(settings, get_sessionmaker(sqlite_url))
    try:
        assert cache.start_listener()
        request = request_for(make_job(), settings)
        other = request_for(make_job(tenant="globex"), settings)
        cache.store(request, answer())
        private_redis.stop()
        cache.l1.clear()
        assert cache.lookup(request).tier == "l3"
        role, _ = run_job(cache, other, redis_url)
        assert role == "leader"
        cache.store(other, answer("stored while Redis was down"))
        assert cache.stats()["l2"]["errors"] >= 1

        private_redis.start()  # empty again: it kept nothing
        time.sleep(0.3)
        cache.store(other, answer("after recovery"))
        assert redis.Redis.from_url(private_redis.url).exists(f"agentqueue:cache:{other.key}")
        cache.l1.clear()
        assert cache.lookup(other).tier == "l2"
        assert cache.stats()["scope"] == "all_workers"
    finally:
        cache.close()


def test_unreachable_database_reads_as_misses(redis_url: str) -> None:
    # Given L3 on a database that refuses connections, Then lookups and stores do not raise,
    # L1 and L2 keep working, and L3 errors are counted.
    dead_database = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
    settings = make_settings(redis_url, **ALL_TIERS)
    cache = TieredCache.from_settings(settings, get_sessionmaker(dead_database))
    try:
        request = request_for(make_job(), settings)
        assert cache.lookup(request).hit is False
        cache.store(request, answer())
        assert cache.lookup(request).tier == "l1"
        cache.l1.clear()
        assert cache.lookup(request).tier == "l2"
        assert cache.invalidate_tags(model="gpt-4o-mini") >= 1
        stats = cache.stats()
        assert stats["l3"]["errors"] >= 1
        assert stats["l2"]["errors"] == 0
    finally:
        cache.close()
