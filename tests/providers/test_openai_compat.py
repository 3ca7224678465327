"""OpenAICompatibleProvider against the local test server, over real HTTP."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from agentqueue.providers.backoff import BackoffPolicy
from agentqueue.providers.base import ProviderError
from agentqueue.providers.connection_pool import PoolConfig
from agentqueue.providers.openai_compat import OpenAICompatibleProvider
from agentqueue.providers.simulated import SimulatedProvider
from agentqueue.testing.llm_server import LLMTestServer
from tests.providers.conftest import FAST_BACKOFF, chat


def test_completion_reports_the_usage_the_server_counted(llm_server: LLMTestServer) -> None:
    """Given a healthy server, when a chat completion is made, then output and usage match what
    the simulated model (same tokenizer) produces for the same request."""
    provider = OpenAICompatibleProvider(base_url=llm_server.base_url, api_key="k")
    request = chat("Summarise the ledger for tenant seven.")

    response = provider.complete(request)
    expected = SimulatedProvider().complete(request)

    assert response.output == expected.output
    assert response.usage == expected.usage
    assert response.model == "gpt-test"
    assert response.finish_reason == "stop" and not response.truncated
    assert response.service_tier == "standard"
    assert response.extra["attempts"] == 1
    provider.close()


def test_length_finish_reason_is_reported_as_truncated(llm_server: LLMTestServer) -> None:
    """Given max_tokens smaller than the answer, then the response is marked truncated."""
    provider = OpenAICompatibleProvider(base_url=llm_server.base_url)
    response = provider.complete(chat(max_tokens=3))
    assert response.finish_reason == "length"
    assert response.truncated
    assert response.usage.output_tokens == 3
    provider.close()


def test_flex_tier_is_requested_and_recorded(llm_server: LLMTestServer) -> None:
    """Given a flex request, then the body asks for flex and the reported tier is recorded."""
    provider = OpenAICompatibleProvider(base_url=llm_server.base_url)
    flex = provider.complete(chat(service_tier="flex"))
    standard = provider.complete(chat())
    assert flex.service_tier == "flex"
    assert standard.service_tier == "standard"
    assert standard.extra["service_tier_reported"] == "default"
    provider.close()


def test_cached_prompt_tokens_are_parsed() -> None:
    """Given a server that caches a repeated system prefix, when the same prefix is sent twice,
    then the second response reports those prompt tokens as cached."""
    with LLMTestServer(cache_min_tokens=8) as server:
        provider = OpenAICompatibleProvider(base_url=server.base_url)
        long_system = "You are a careful cost analyst for agent queues. " * 4
        request = chat()
        request.messages[0]["content"] = long_system
        first = provider.complete(request)
        second = provider.complete(request)
        provider.close()
    assert first.usage.cached_input_tokens == 0
    assert 0 < second.usage.cached_input_tokens < second.usage.input_tokens


def test_429_with_retry_after_is_retried_after_at_least_that_long() -> None:
    """Given a server that answers the first request 429 with Retry-After: 1, when a call is
    made, then it is retried no sooner than a second later and succeeds."""
    with LLMTestServer(faults=["status=429,retry_after=1,first=1"]) as server:
        provider = OpenAICompatibleProvider(base_url=server.base_url, backoff=FAST_BACKOFF)
        response = provider.complete(chat())
        provider.close()
        arrivals = server.arrivals

    assert response.extra["attempts"] == 2
    assert [a.fault for a in arrivals] == ["status=429,retry_after=1,first=1", None]
    assert arrivals[1].at - arrivals[0].at >= 1.0


def test_retry_after_as_http_date_is_honoured() -> None:
    """Given a 503 whose Retry-After is an HTTP date two seconds ahead, then the retry waits."""
    with LLMTestServer(faults=["status=503,retry_after=date+2,first=1"]) as server:
        provider = OpenAICompatibleProvider(base_url=server.base_url, backoff=FAST_BACKOFF)
        provider.complete(chat())
        provider.close()
        first, second = server.arrivals
    # HTTP dates have one-second resolution, so at least one full second must have passed.
    assert second.at - first.at >= 1.0


def test_persistent_500_ends_in_provider_error_after_the_configured_attempts() -> None:
    """Given a server that always answers 500 for one message, when that call is made, then it
    is tried max_attempts times and ends in a non-retryable provider_error; a different message
    on the same provider still succeeds."""
    with LLMTestServer(faults=["status=500,contains=EXPLODE"]) as server:
        provider = OpenAICompatibleProvider(base_url=server.base_url, backoff=FAST_BACKOFF)
        with pytest.raises(ProviderError) as caught:
            provider.complete(chat("please EXPLODE now"))
        fine = provider.complete(chat("a normal question"))
        provider.close()
        received = server.requests_received

    assert caught.value.code == "provider_error"
    assert caught.value.retryable is False
    assert "after 3 attempts" in caught.value.message
    assert "HTTP 500" in caught.value.message
    assert received == FAST_BACKOFF.max_attempts + 1
    assert fine.output


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "provider_bad_request"),
        (401, "provider_auth_error"),
        (403, "provider_auth_error"),
        (404, "provider_not_found"),
        (422, "provider_bad_request"),
    ],
)
def test_client_errors_fail_at_once_with_a_clear_code(status: int, code: str) -> None:
    """Given a 4xx that retrying cannot fix, then the call fails on the first attempt."""
    with LLMTestServer(faults=[f"status={status}"]) as server:
        provider = OpenAICompatibleProvider(base_url=server.base_url, backoff=FAST_BACKOFF)
        with pytest.raises(ProviderError) as caught:
            provider.complete(chat())
        provider.close()
        assert server.requests_received == 1
    assert caught.value.code == code
    assert caught.value.retryable is False
    assert f"HTTP {status}" in caught.value.message


def test_retry_after_longer_than_the_cap_hands_the_wait_back_to_the_caller() -> None:
    """Given a 429 asking for 120 s (over the 60 s cap), then the call does not sleep but raises
    a retryable provider_rate_limited error carrying the wait."""
    with LLMTestServer(faults=["status=429,retry_after=120"]) as server:
        provider = OpenAICompatibleProvider(base_url=server.base_url, backoff=FAST_BACKOFF)
        started = time.monotonic()
        with pytest.raises(ProviderError) as caught:
            provider.complete(chat())
        provider.close()
    assert time.monotonic() - started < 1.0
    assert caught.value.code == "provider_rate_limited"
    assert caught.value.retryable is True
    assert caught.value.retry_after_s == 120


def test_connection_refused_is_retried_until_the_server_comes_up() -> None:
    """Given nothing listening on the port yet, when a call is made and the server starts 0.3 s
    later, then the connection errors are retried and the call succeeds."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    servers: list[LLMTestServer] = []
    starter = threading.Timer(0.3, lambda: servers.append(LLMTestServer(port=port).start()))
    starter.start()
    provider = OpenAICompatibleProvider(
        base_url=f"http://127.0.0.1:{port}/v1",
        backoff=BackoffPolicy(max_attempts=8, base_s=0.2, max_s=0.4),
    )
    try:
        response = provider.complete(chat())
    finally:
        starter.join()
        provider.close()
        for server in servers:
            server.stop()
    assert response.extra["attempts"] > 1
    assert servers[0].requests_served == 1


def test_dropped_connection_is_retried(llm_server: LLMTestServer) -> None:
    """Given a server that closes the connection without answering the first two requests,
    then the call is retried and succeeds on the third attempt."""
    llm_server.add_fault("disconnect,first=2")
    provider = OpenAICompatibleProvider(base_url=llm_server.base_url, backoff=FAST_BACKOFF)
    response = provider.complete(chat())
    provider.close()
    assert response.extra["attempts"] == 3
    assert llm_server.requests_received == 3


def test_read_timeout_is_retried(llm_server: LLMTestServer) -> None:
    """Given a server that sleeps past the client's 0.3 s timeout once, then the call times out,
    is retried, and succeeds."""
    llm_server.add_fault("delay=2,first=1")
    provider = OpenAICompatibleProvider(
        base_url=llm_server.base_url, pool=PoolConfig(timeout_s=0.3), backoff=FAST_BACKOFF
    )
    started = time.monotonic()
    response = provider.complete(chat())
    provider.close()
    assert response.extra["attempts"] == 2
    assert time.monotonic() - started < 1.5


def test_500_requests_from_64_threads_stay_within_the_pool() -> None:
    """Given one provider with the default pool (10 connections) shared by 64 threads, when 500
    requests are made at 20 ms server latency, then all succeed over no more TCP connections
    than the pool size, and never more requests in flight than that."""
    with LLMTestServer(latency_ms=20) as server:
        provider = OpenAICompatibleProvider(base_url=server.base_url)
        with ThreadPoolExecutor(max_workers=64) as pool:
            responses = list(pool.map(lambda i: provider.complete(chat(f"job {i}")), range(500)))
        provider.close()
        stats = server.stats()

    assert provider.pool_size == 10
    assert len(responses) == 500 and all(r.output for r in responses)
    assert stats["requests_served"] == 500
    assert 1 <= stats["connections_accepted"] <= provider.pool_size
    assert stats["max_in_flight"] <= provider.pool_size


def test_max_tokens_field_follows_the_endpoint() -> None:
    """Given OpenAI's own host, then max_completion_tokens is sent; elsewhere max_tokens."""
    official = OpenAICompatibleProvider(api_key="k")
    local = OpenAICompatibleProvider(base_url="http://127.0.0.1:9/v1")
    assert official.max_tokens_field == "max_completion_tokens"
    assert local.max_tokens_field == "max_tokens"
    official.close()
    local.close()


def test_with_a_response_observer_a_429_goes_back_at_once(llm_server: LLMTestServer) -> None:
    """Given an observer (the shared rate limiter), every reply's status and headers reach it,
    and a 429, with or without Retry-After, is raised at once (retryable) rather than retried
    here, so the caller waits its turn with every other worker."""
    llm_server.add_fault("status=429,first=1")
    seen: list[tuple[str, int]] = []
    provider = OpenAICompatibleProvider(base_url=llm_server.base_url, backoff=FAST_BACKOFF)
    provider.observe_responses(lambda model, status, headers: seen.append((model, status)))
    try:
        with pytest.raises(ProviderError) as raised:
            provider.complete(chat("hello"))
        answered = provider.complete(chat("hello"))
    finally:
        provider.close()
    assert raised.value.code == "provider_rate_limited" and raised.value.retryable
    assert answered.output
    assert [status for _, status in seen] == [429, 200]
    assert llm_server.requests_received == 2
