"""A deterministic stand-in for an LLM: output derived from the input, honest token counts."""

from __future__ import annotations

import hashlib
import json
import random
import re
import time

from agentqueue.providers.base import (
    ProviderError,
    ProviderRequest,
    ProviderResponse,
    TokenUsage,
)

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_WORDS = [
    "plan",
    "summary",
    "answer",
    "cost",
    "budget",
    "model",
    "queue",
    "agent",
    "result",
    "context",
    "batch",
    "cache",
    "window",
    "tenant",
    "ledger",
    "price",
    "token",
    "worker",
    "request",
    "reply",
    "value",
    "check",
    "step",
    "note",
]


def count_tokens(text: str) -> int:
    """Words and punctuation marks: the simulated model's own tokenizer."""
    return len(_TOKEN.findall(text))


class SimulatedProvider:
    """Same request in, same text out; usage counts what was really sent and produced."""

    name = "simulated"

    def __init__(self, *, latency_ms: int = 0, failure_rate: float = 0.0) -> None:
        self.latency_s = latency_ms / 1000
        self.failure_rate = failure_rate
        self._random = random.Random()

    def complete(self, request: ProviderRequest) -> ProviderResponse:
        if self.latency_s:
            time.sleep(self.latency_s)
        if self.failure_rate and self._random.random() < self.failure_rate:
            raise ProviderError("simulated transient failure", retryable=True)
        digest = hashlib.sha256(
            json.dumps(
                [
                    request.model,
                    request.messages,
                    request.temperature,
                    request.top_p,
                    request.stop,
                    request.seed,
                ],
                sort_keys=True,
            ).encode()
        ).digest()
        wanted = 8 + digest[0] % 40
        produced = min(wanted, request.max_tokens)
        words = [_WORDS[b % len(_WORDS)] for b in digest[1 : 1 + produced]]
        while len(words) < produced:
            words.append(_WORDS[len(words) % len(_WORDS)])
        output = " ".join(words)
        input_tokens = sum(count_tokens(str(m.get("content", ""))) + 4 for m in request.messages)
        return ProviderResponse(
            output=output,
            usage=TokenUsage(input_tokens=input_tokens, output_tokens=produced),
            model=request.model,
            finish_reason="length" if produced < wanted else "stop",
            service_tier=request.service_tier,
        )

    def close(self) -> None:
        return None
