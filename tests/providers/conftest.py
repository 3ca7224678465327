"""A local LLM test server per test, and small helpers for provider tests against it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentqueue.providers.backoff import BackoffPolicy
from agentqueue.providers.base import ProviderRequest
from agentqueue.testing.llm_server import LLMTestServer

# Short waits so retry tests stay fast; Retry-After still overrides them.
FAST_BACKOFF = BackoffPolicy(max_attempts=3, base_s=0.01, max_s=0.05)


@pytest.fixture
def llm_server() -> Iterator[LLMTestServer]:
    with LLMTestServer() as server:
        yield server


def chat(
    text: str = "What is the plan?",
    *,
    model: str = "gpt-test",
    max_tokens: int = 64,
    service_tier: str = "standard",
) -> ProviderRequest:
    """A two-message conversation (system + user), deterministic at temperature 0."""
    return ProviderRequest(
        model=model,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": text},
        ],
        max_tokens=max_tokens,
        temperature=0.0,
        service_tier=service_tier,
    )
