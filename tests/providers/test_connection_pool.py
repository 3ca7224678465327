"""PoolConfig sizing, and EndpointPool leasing each connection to one thread at a time."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from agentqueue.providers.connection_pool import EndpointPool, PoolConfig
from agentqueue.providers.openai_compat import OpenAICompatibleProvider
from agentqueue.testing.llm_server import LLMTestServer
from tests.providers.conftest import chat


def test_pool_size_is_the_per_host_cap_bounded_by_the_total() -> None:
    """Given the issue's defaults (20 total, 10 per host), then one endpoint's pool holds 10; a
    larger per-host cap is bounded by the total."""
    assert PoolConfig().size == 10
    assert PoolConfig(max_connections=64, max_connections_per_host=64).size == 64
    assert PoolConfig(max_connections=20, max_connections_per_host=100).size == 20


def test_no_connection_is_closed_under_another_threads_request() -> None:
    """Given a 6-connection pool shared by 32 threads and a server that answers at once, when
    3000 requests are made, then the server serves exactly 3000 (none sent twice), every one
    succeeds on its first attempt, and no more than 6 TCP connections are ever opened.

    With one httpcore pool shared by the threads, a thread could close a connection that
    another thread had just been handed and sent a request on (EBADF, then a paid retry and a
    7th connection): at zero latency that happened in every run of this test."""
    requests = 3000
    config = PoolConfig(max_connections=12, max_connections_per_host=6)
    with LLMTestServer() as server:
        provider = OpenAICompatibleProvider(base_url=server.base_url, pool=config)
        with ThreadPoolExecutor(max_workers=32) as pool:
            responses = list(pool.map(lambda i: provider.complete(chat(f"n {i}")), range(requests)))
        provider.close()
        stats = server.stats()
    assert stats["requests_served"] == requests
    assert [r.extra["attempts"] for r in responses] == [1] * requests
    assert 1 <= stats["connections_accepted"] <= config.size
    assert 1 < stats["max_in_flight"] <= config.size


def test_a_closed_pool_refuses_leases_and_closes_what_comes_back() -> None:
    pool = EndpointPool("http://127.0.0.1:9", {}, PoolConfig(max_connections=2))
    with pool.connection() as leased:
        pool.close()
        assert not leased.is_closed  # the request holding it finishes first
    assert leased.is_closed
    with pytest.raises(RuntimeError, match="closed"), pool.connection():
        pass


def test_large_pool_caps_connections_and_concurrency() -> None:
    """Given a 40-connection pool shared by 96 threads, when 240 requests are made at 100 ms
    latency, then all succeed over at most 40 TCP connections with at most 40 requests in
    flight, and more than 20 were in flight at once."""
    config = PoolConfig(max_connections=40, max_connections_per_host=40)
    with LLMTestServer(latency_ms=100) as server:
        provider = OpenAICompatibleProvider(base_url=server.base_url, pool=config)
        with ThreadPoolExecutor(max_workers=96) as pool:
            responses = list(pool.map(lambda i: provider.complete(chat(f"n {i}")), range(240)))
        provider.close()
        stats = server.stats()
    assert len(responses) == 240
    assert stats["requests_served"] == 240
    assert stats["connections_accepted"] <= 40
    assert 20 < stats["max_in_flight"] <= 40
