"""Requests that may have reached the provider before failing in transit, over real HTTP.

A dropped connection or a read timeout comes after the request was sent: the provider may have
run and billed it. The transport counts such attempts in the reply (`maybe_repeated`), the
providers carry the count on the response (`possibly_repeated`), and an error raised after one
says so (`maybe_sent`). A refused connection and an HTTP error status are not billed calls.
"""

from __future__ import annotations

import socket
from dataclasses import replace

import pytest

from agentqueue.providers.anthropic import AnthropicProvider
from agentqueue.providers.backoff import BackoffPolicy
from agentqueue.providers.base import ProviderError, ProviderRequest, ProviderResponse
from agentqueue.providers.connection_pool import PoolConfig
from agentqueue.providers.http_transport import HttpTransport
from agentqueue.providers.openai_compat import OpenAICompatibleProvider
from agentqueue.testing.llm_server import LLMTestServer
from tests.providers.conftest import FAST_BACKOFF, chat

BODY = {"model": "gpt-test", "messages": [{"role": "user", "content": "hello"}]}


def transport(
    base_url: str, *, pool: PoolConfig | None = None, backoff: BackoffPolicy = FAST_BACKOFF
) -> HttpTransport:
    return HttpTransport(
        provider="openai",
        base_url=base_url,
        headers={"content-type": "application/json"},
        pool=pool,
        backoff=backoff,
    )


def complete(server: LLMTestServer, request: ProviderRequest | None = None) -> ProviderResponse:
    """One call of the OpenAI-compatible provider to `server` (default request: `chat()`)."""
    provider = OpenAICompatibleProvider(base_url=server.base_url, backoff=FAST_BACKOFF)
    try:
        return provider.complete(request or chat())
    finally:
        provider.close()


def failure(
    server: LLMTestServer, request: ProviderRequest | None = None
) -> pytest.ExceptionInfo[ProviderError]:
    """The error of a call like `complete` that must fail."""
    with pytest.raises(ProviderError) as caught:
        complete(server, request)
    return caught


def test_a_dropped_connection_then_an_answer_counts_one_maybe_repeated_attempt(
    llm_server: LLMTestServer,
) -> None:
    """Given a server that reads the first request and hangs up without a reply, when a JSON
    POST is made, then it is answered on the second attempt, the reply says one earlier attempt
    may have been received, and the server did count two requests."""
    llm_server.add_fault("disconnect,first=1")
    http = transport(llm_server.base_url)
    try:
        reply = http.post_json("/chat/completions", BODY)
    finally:
        http.close()
    assert reply.attempts == 2
    assert reply.maybe_repeated == 1
    assert llm_server.requests_received == 2
    assert llm_server.requests_served == 1


def test_a_read_timeout_then_an_answer_counts_one_maybe_repeated_attempt(
    llm_server: LLMTestServer,
) -> None:
    """Given a server that answers the first request after the client's 0.3 s timeout, then
    that attempt counts as possibly received (the server did receive it)."""
    llm_server.add_fault("delay=2,first=1")
    http = transport(llm_server.base_url, pool=PoolConfig(timeout_s=0.3))
    try:
        reply = http.post_json("/chat/completions", BODY)
    finally:
        http.close()
    assert (reply.attempts, reply.maybe_repeated) == (2, 1)
    assert llm_server.requests_received == 2


def test_a_refused_connection_is_not_maybe_sent() -> None:
    """Given nothing listening on the port, when every attempt fails to connect, then the
    error says no request may have reached the provider."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    http = transport(
        f"http://127.0.0.1:{port}/v1", backoff=BackoffPolicy(max_attempts=2, base_s=0.01)
    )
    try:
        with pytest.raises(ProviderError) as caught:
            http.post_json("/chat/completions", BODY)
    finally:
        http.close()
    assert caught.value.code == "provider_error"
    assert "ConnectError" in caught.value.message
    assert caught.value.maybe_sent == 0


def test_an_http_500_then_an_answer_is_not_a_possible_repeat(llm_server: LLMTestServer) -> None:
    """Given a server that answers the first request with HTTP 500, when the call is retried
    and answered, then no attempt counts as possibly billed (an error status is not billed)."""
    llm_server.add_fault("status=500,first=1")
    response = complete(llm_server)
    assert response.extra["attempts"] == 2
    assert response.possibly_repeated == 0 and response.extra["maybe_repeated"] == 0
    assert llm_server.requests_received == 2


def test_every_attempt_dropped_raises_an_error_that_may_have_been_sent(
    llm_server: LLMTestServer,
) -> None:
    """Given a server that hangs up on every request, when all three attempts fail, then the
    error says a request may have reached the provider, and the server counted all three."""
    llm_server.add_fault("disconnect")
    caught = failure(llm_server)
    assert caught.value.code == "provider_error" and caught.value.retryable is False
    assert caught.value.maybe_sent == 3
    assert llm_server.requests_received == 3


def test_a_refusal_after_a_dropped_attempt_still_says_maybe_sent(
    llm_server: LLMTestServer,
) -> None:
    """Given a first request dropped after arrival and a second refused with HTTP 400, then
    the 400's error says an earlier request may have reached the provider."""
    llm_server.add_fault("disconnect,first=1")
    llm_server.add_fault("status=400")
    caught = failure(llm_server)
    assert caught.value.code == "provider_bad_request"
    assert caught.value.maybe_sent > 0
    assert llm_server.requests_received == 2


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_providers_carry_the_count_on_the_response(llm_server: LLMTestServer, kind: str) -> None:
    """Given two dropped requests then an answer, then both providers' responses say two
    earlier requests may have been billed, next to the attempts."""
    llm_server.add_fault("disconnect,first=2")
    provider = (
        OpenAICompatibleProvider(base_url=llm_server.base_url, backoff=FAST_BACKOFF)
        if kind == "openai"
        else AnthropicProvider(base_url=llm_server.url, api_key="k", backoff=FAST_BACKOFF)
    )
    try:
        response = provider.complete(chat())
    finally:
        provider.close()
    assert response.output
    assert response.possibly_repeated == 2
    assert response.extra["maybe_repeated"] == 2 and response.extra["attempts"] == 3
    assert llm_server.requests_received == 3


def test_a_request_that_may_not_be_repeated_is_not_sent_again_after_a_drop(
    llm_server: LLMTestServer,
) -> None:
    """Given a request marked not repeatable (the job forbids repeated calls) and a server that
    drops the first request after reading it, then the call is not sent again: it fails with
    `call_outcome_unknown`, one request may have been received, and the server counted one."""
    llm_server.add_fault("disconnect,first=1")
    caught = failure(llm_server, replace(chat(), repeatable=False))
    assert caught.value.code == "call_outcome_unknown" and caught.value.retryable is False
    assert caught.value.maybe_sent == 1
    assert llm_server.requests_received == 1


def test_a_request_that_may_not_be_repeated_is_still_retried_after_an_error_status(
    llm_server: LLMTestServer,
) -> None:
    """Given a request marked not repeatable and a server answering HTTP 500 first, then it is
    retried as usual: an error status is not a call the provider may have billed."""
    llm_server.add_fault("status=500,first=1")
    response = complete(llm_server, replace(chat(), repeatable=False))
    assert response.possibly_repeated == 0 and response.extra["attempts"] == 2
    assert llm_server.requests_received == 2
