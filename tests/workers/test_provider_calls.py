"""Provider answers become cache entries that keep their usage and finish reason."""

from __future__ import annotations

from agentqueue.providers import ProviderResponse
from agentqueue.usage import TokenUsage
from agentqueue.workers.provider_calls import entry_for


def test_entry_from_a_provider_response_keeps_usage_and_finish() -> None:
    response = ProviderResponse(
        output="done",
        usage=TokenUsage(input_tokens=10, output_tokens=2, cached_input_tokens=4),
        model="gpt-4o-mini-2024-07-18",
        finish_reason="length",
    )
    entry = entry_for(response, provider="openai")
    assert (entry.usage.input_tokens, entry.usage.output_tokens) == (10, 2)
    assert entry.usage.cached_input_tokens == 4
    assert entry.model == "gpt-4o-mini-2024-07-18" and entry.provider == "openai"
    assert not entry.storable
