"""Token estimates before the call: input from the messages, output bounded by max_tokens."""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

from agentqueue.budget.pricing import PricedModel, to_money
from agentqueue.jobs import Message

# Chat formats wrap each message in a few tokens (role, separators) and prime the reply.
TOKENS_PER_MESSAGE = 4
TOKENS_PER_REPLY = 3


def estimate_text_tokens(text: str, chars_per_token: float) -> int:
    """A conservative count without a tokenizer: UTF-8 bytes / `chars_per_token`, rounded up.

    Counting bytes rather than characters charges non-Latin scripts (2-4 bytes a character)
    at about a token per character, which is what real tokenizers do with them.
    """
    return math.ceil(len(text.encode("utf-8")) / chars_per_token)


def estimate_input_tokens(messages: Sequence[Message], *, chars_per_token: float = 3.0) -> int:
    """Input tokens of a chat request, over- rather than under-estimated (no offline tokenizer)."""
    total = TOKENS_PER_REPLY
    for message in messages:
        total += TOKENS_PER_MESSAGE + estimate_text_tokens(message.content, chars_per_token)
        if message.name:
            total += estimate_text_tokens(message.name, chars_per_token)
    return total


def output_token_bound(
    requested_max_tokens: int | None, *, default_max_tokens: int, model_limit: int | None
) -> int:
    """The most output tokens the call may produce: `max_tokens` (or the default), capped by
    the model's own output limit. The worker must send this as the provider's `max_tokens`."""
    bound = requested_max_tokens if requested_max_tokens is not None else default_max_tokens
    if model_limit is not None:
        bound = min(bound, model_limit)
    return max(bound, 1)


def worst_case_cost(priced: PricedModel, input_tokens: int, max_output_tokens: int) -> Decimal:
    """The most this call can cost: every input token uncached and every output token used."""
    return to_money(priced.cost(input_tokens, max_output_tokens))
