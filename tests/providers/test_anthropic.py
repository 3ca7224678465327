"""AnthropicProvider: the Messages API shape, round trip against the local test server."""

from __future__ import annotations

import pytest

from agentqueue.providers.anthropic import AnthropicProvider
from agentqueue.providers.base import ProviderError, ProviderRequest
from agentqueue.providers.openai_compat import OpenAICompatibleProvider
from agentqueue.testing.llm_server import LLMTestServer
from tests.providers.conftest import FAST_BACKOFF, chat

KEY = "anthropic-test-key-123"


def test_round_trip_moves_system_to_the_top_level_and_counts_the_same_tokens() -> None:
    """Given a server that, like the real API, requires x-api-key and anthropic-version and
    rejects a "system" role inside messages, when a system + user conversation is sent, then it
    succeeds, and its usage and output match the same conversation sent in the OpenAI shape."""
    request = chat("Which model is cheapest for summaries?")
    with LLMTestServer(api_key=KEY) as server:
        anthropic = AnthropicProvider(base_url=server.url, api_key=KEY)
        openai = OpenAICompatibleProvider(base_url=server.base_url, api_key=KEY)
        via_messages = anthropic.complete(request)
        via_chat = openai.complete(request)
        anthropic.close()
        openai.close()
        paths = [a.path for a in server.arrivals]

    assert paths == ["/v1/messages", "/v1/chat/completions"]
    assert via_messages.output == via_chat.output
    assert via_messages.usage == via_chat.usage
    assert via_messages.finish_reason == "stop"
    assert via_messages.service_tier == "standard"
    assert str(via_messages.extra["response_id"]).startswith("msg_")


def test_max_tokens_stop_reason_is_truncation(llm_server: LLMTestServer) -> None:
    """Given max_tokens too small for the answer, then stop_reason max_tokens means truncated."""
    provider = AnthropicProvider(base_url=llm_server.url, api_key=KEY)
    response = provider.complete(chat(max_tokens=2))
    provider.close()
    assert response.truncated
    assert response.usage.output_tokens == 2


def test_cache_reads_are_counted_in_input_and_reported_as_cached() -> None:
    """Given a repeated long system prompt the server caches, then the second call's
    input_tokens still counts every prompt token (Anthropic reports cache reads apart) and the
    cached part is cached_input_tokens."""
    request = ProviderRequest(
        model="claude-test",
        messages=[
            {"role": "system", "content": "Rules of the ledger, stated at length. " * 5},
            {"role": "user", "content": "Go."},
        ],
        max_tokens=16,
    )
    with LLMTestServer(cache_min_tokens=8) as server:
        provider = AnthropicProvider(base_url=server.url, api_key=KEY)
        first = provider.complete(request)
        second = provider.complete(request)
        provider.close()
    assert first.usage.cached_input_tokens == 0
    assert second.usage.input_tokens == first.usage.input_tokens
    assert 0 < second.usage.cached_input_tokens < second.usage.input_tokens


def test_overloaded_529_is_retried_like_any_5xx() -> None:
    """Given Anthropic's 529 "overloaded" on the first request, then the call is retried."""
    with LLMTestServer(faults=["status=529,first=1"]) as server:
        provider = AnthropicProvider(base_url=server.url, api_key=KEY, backoff=FAST_BACKOFF)
        response = provider.complete(chat())
        provider.close()
    assert response.extra["attempts"] == 2


def test_missing_key_is_an_auth_error_naming_the_setting() -> None:
    """Given a server requiring a key and a provider without one, then the error says which
    setting to fill in."""
    with LLMTestServer(api_key=KEY) as server:
        provider = AnthropicProvider(base_url=server.url, backoff=FAST_BACKOFF)
        with pytest.raises(ProviderError) as caught:
            provider.complete(chat())
        provider.close()
    assert caught.value.code == "provider_auth_error"
    assert "AGENTQUEUE_ANTHROPIC_API_KEY" in caught.value.message
