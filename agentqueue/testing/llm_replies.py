"""What the LLM test server answers: OpenAI and Anthropic reply bodies with honest token counts."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

from agentqueue.providers.base import ProviderRequest, ProviderResponse
from agentqueue.providers.simulated import SimulatedProvider, count_tokens

MESSAGE_OVERHEAD_TOKENS = 4  # what SimulatedProvider adds per message


def text_of(content: Any) -> str:
    """Plain text of a message's content, whether a string or a list of text parts/blocks."""
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def check_anthropic_shape(body: dict[str, Any], version: str | None) -> None:
    """What the real Messages API insists on, so a provider sending the OpenAI shape fails here."""
    if not version:
        raise ValueError("anthropic-version: header is required")
    if not isinstance(body.get("max_tokens"), int):
        raise ValueError("max_tokens: field required")
    roles = {m.get("role") for m in body["messages"]}
    if not roles <= {"user", "assistant"}:
        raise ValueError(
            f"messages: roles must be user or assistant, got {sorted(map(str, roles))}"
        )
    if "system" in body and not isinstance(body["system"], str | list):
        raise ValueError("system: must be a string or a list of text blocks")


class PromptCache:
    """Simulated provider prompt caching: a repeated system prefix of enough tokens is "cached"."""

    def __init__(self, min_tokens: int) -> None:
        self.min_tokens = min_tokens
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def cached_tokens(self, messages: list[dict[str, Any]]) -> int:
        prefix = []
        for message in messages:
            if message.get("role") != "system":
                break
            prefix.append(str(message.get("content", "")))
        tokens = sum(count_tokens(t) + MESSAGE_OVERHEAD_TOKENS for t in prefix)
        if not prefix or tokens < self.min_tokens:
            return 0
        key = hashlib.sha256("\x00".join(prefix).encode()).hexdigest()
        with self._lock:
            seen = key in self._seen
            self._seen.add(key)
        return tokens if seen else 0


class ReplyMaker:
    """Deterministic completions (the simulated provider's) in either API's JSON shape."""

    def __init__(self, cache_min_tokens: int = 1024) -> None:
        self._model = SimulatedProvider()
        self._cache = PromptCache(cache_min_tokens)

    def _complete(
        self,
        model: str,
        messages: list[dict[str, Any]],
        body: dict[str, Any],
        max_tokens: int,
        stop: Any,
    ) -> tuple[ProviderResponse, int]:
        flat = [
            {"role": m.get("role", "user"), "content": text_of(m.get("content"))} for m in messages
        ]
        response = self._model.complete(
            ProviderRequest(
                model=model,
                messages=flat,
                max_tokens=max_tokens,
                temperature=body.get("temperature"),
                top_p=body.get("top_p"),
                stop=[stop] if isinstance(stop, str) else stop,
                seed=body.get("seed"),
            )
        )
        return response, self._cache.cached_tokens(flat)

    def openai(self, body: dict[str, Any]) -> dict[str, Any]:
        """A Chat Completions reply to `body` (already validated)."""
        max_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or 1024)
        response, cached = self._complete(
            body["model"], body["messages"], body, max_tokens, body.get("stop")
        )
        usage = response.usage
        return {
            "id": f"chatcmpl-{_digest(body)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "service_tier": "flex" if body.get("service_tier") == "flex" else "default",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": response.output},
                    "finish_reason": response.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": usage.input_tokens,
                "completion_tokens": usage.output_tokens,
                "total_tokens": usage.input_tokens + usage.output_tokens,
                "prompt_tokens_details": {"cached_tokens": cached},
            },
        }

    def anthropic(self, body: dict[str, Any]) -> dict[str, Any]:
        """A Messages API reply to `body` (already validated); `system` counts as a message."""
        system = body.get("system")
        messages = list(body["messages"])
        if system:
            messages.insert(0, {"role": "system", "content": text_of(system)})
        response, cached = self._complete(
            body["model"], messages, body, int(body["max_tokens"]), body.get("stop_sequences")
        )
        usage = response.usage
        return {
            "id": f"msg_{_digest(body)}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": response.output}],
            "stop_reason": "max_tokens" if response.truncated else "end_turn",
            "stop_sequence": None,
            "usage": {
                # Anthropic counts cache reads apart from input_tokens.
                "input_tokens": usage.input_tokens - cached,
                "output_tokens": usage.output_tokens,
                "cache_read_input_tokens": cached,
                "cache_creation_input_tokens": 0,
                "service_tier": "standard",
            },
        }


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(repr(sorted(body.items())).encode()).hexdigest()[:24]
