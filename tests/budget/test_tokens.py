"""Token estimates before the call."""

from __future__ import annotations

from decimal import Decimal

from agentqueue.budget.pricing import PriceBook
from agentqueue.budget.tokens import (
    estimate_input_tokens,
    output_token_bound,
    worst_case_cost,
)
from agentqueue.jobs import Message
from agentqueue.providers.base import ProviderRequest
from agentqueue.providers.simulated import SimulatedProvider


def test_estimate_is_not_below_what_the_simulated_provider_counts() -> None:
    """Given ordinary prose, when estimated, then at least the provider's own count (so the
    reservation covers the call) and not absurdly more (under 2x of 1 token per 3 bytes)."""
    text = "The quarterly report shows revenue up 12% and costs down; summarise it briefly. " * 20
    messages = [
        Message(role="system", content="You are terse."),
        Message(role="user", content=text),
    ]
    estimate = estimate_input_tokens(messages)
    response = SimulatedProvider().complete(
        ProviderRequest(model="m", messages=[m.model_dump() for m in messages], max_tokens=5)
    )
    assert estimate >= response.usage.input_tokens
    assert estimate <= 2 * (len(text) // 3 + 40)


def test_non_latin_text_counts_about_a_token_a_character() -> None:
    """Given Japanese text (3 UTF-8 bytes a character), then ~1 token per character."""
    text = "予算の上限を超えないように" * 10
    estimate = estimate_input_tokens([Message(role="user", content=text)])
    assert estimate >= len(text)


def test_output_bound_uses_max_tokens_default_and_model_limit() -> None:
    assert output_token_bound(500, default_max_tokens=1024, model_limit=8192) == 500
    assert output_token_bound(None, default_max_tokens=1024, model_limit=8192) == 1024
    assert output_token_bound(50_000, default_max_tokens=1024, model_limit=8192) == 8192
    assert output_token_bound(None, default_max_tokens=1024, model_limit=None) == 1024


def test_worst_case_cost_counts_all_input_uncached_and_all_output() -> None:
    """Given gpt-4o ($2.50 in, $10 out per MTok), 1000 in and 500 out cost $0.0075."""
    assert worst_case_cost(PriceBook().price("gpt-4o"), 1000, 500) == Decimal("0.0075")
