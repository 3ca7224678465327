"""PoolConfig sizing and EndpointPool's cap on TCP connections, split over clients or not."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from agentqueue.providers.connection_pool import PoolConfig
from agentqueue.providers.openai_compat import OpenAICompatibleProvider
from agentqueue.testing.llm_server import LLMTestServer
from tests.providers.conftest import chat


def test_pool_size_is_the_per_host_cap_bounded_by_the_total() -> None:
    """Given the issue's defaults (20 total, 10 per host), then one endpoint's pool holds 10; a
    larger per-host cap is bounded by the total; every pooled connection is kept alive."""
    assert PoolConfig().size == 10
    assert PoolConfig(max_connections=64, max_connections_per_host=64).size == 64
    assert PoolConfig(max_connections=20, max_connections_per_host=100).size == 20
    limits = PoolConfig(keepalive_s=30).limits(10)
    assert (limits.max_connections, limits.max_keepalive_connections) == (10, 10)
    assert limits.keepalive_expiry == 30


def test_large_pools_split_into_near_equal_clients_of_at_most_32() -> None:
    assert PoolConfig().client_sizes() == [10]
    assert PoolConfig(max_connections=32, max_connections_per_host=32).client_sizes() == [32]
    assert PoolConfig(max_connections=70, max_connections_per_host=70).client_sizes() == [
        24,
        23,
        23,
    ]


def test_split_pool_still_caps_connections_and_concurrency() -> None:
    """Given a 40-connection pool (two clients of 20) shared by 96 threads, when 240 requests
    are made at 100 ms latency, then all succeed over at most 40 TCP connections with at most 40
    requests in flight, and both clients carried traffic (more than 20 were in flight)."""
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
