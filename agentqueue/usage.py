"""`TokenUsage`: the tokens one LLM call used, as providers report it and the rest keep it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens of one call; `input_tokens` includes the `cached_input_tokens` read from a
    provider's prompt cache (which are priced lower)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
