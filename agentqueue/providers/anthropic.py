"""Anthropic's Messages API (`POST {base}/v1/messages`), the second request shape we speak."""

from __future__ import annotations

from typing import Any, Unpack

from agentqueue.providers.base import (
    FinishReason,
    ProviderError,
    ProviderRequest,
    ProviderResponse,
    TokenUsage,
)
from agentqueue.providers.http_provider import HttpOptions, HttpProvider, transport_options
from agentqueue.providers.http_transport import JsonReply
from agentqueue.settings import Settings

DEFAULT_ANTHROPIC_VERSION = "2023-06-01"
_SYSTEM_ROLES = frozenset({"system", "developer"})
_STOP_REASONS: dict[str | None, FinishReason] = {
    None: "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "refusal": "error",
}


def _text_of(content: Any) -> str:
    """Plain text of a message's content, whether a string or a list of text parts."""
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


class AnthropicProvider(HttpProvider):
    """Turns OpenAI-style messages into a Messages API call over the shared pooled transport.

    System messages move to the top-level `system` field. Usage is normalised to agentqueue's
    meaning: `input_tokens` is every prompt token (Anthropic's `input_tokens` excludes cache
    reads and writes), and `cached_input_tokens` the part read from the prompt cache.
    """

    name = "anthropic"
    path = "/v1/messages"
    models_path = "/v1/models?limit=1000"
    default_base_url = "https://api.anthropic.com"

    def __init__(
        self, *, version: str = DEFAULT_ANTHROPIC_VERSION, **options: Unpack[HttpOptions]
    ) -> None:
        super().__init__(headers={"anthropic-version": version}, **options)

    @classmethod
    def from_settings(cls, settings: Settings) -> AnthropicProvider:
        return cls(
            base_url=settings.anthropic_base_url,
            api_key=settings.anthropic_api_key,
            version=settings.anthropic_version,
            **transport_options(settings),
        )

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key}

    def _body(self, request: ProviderRequest) -> dict[str, Any]:
        system = [
            _text_of(m.get("content")) for m in request.messages if m.get("role") in _SYSTEM_ROLES
        ]
        messages = [
            {
                "role": "assistant" if m.get("role") == "assistant" else "user",
                "content": m.get("content") if m.get("content") is not None else "",
            }
            for m in request.messages
            if m.get("role") not in _SYSTEM_ROLES
        ]
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": messages,
        }
        if system:
            body["system"] = "\n\n".join(system)
        optional = {
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stop_sequences": request.stop,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        # The Messages API has no seed and no flex tier; the request simply runs at standard.
        return body

    def _response(self, request: ProviderRequest, reply: JsonReply) -> ProviderResponse:
        body = reply.body
        content = body.get("content")
        usage = body.get("usage")
        if not isinstance(content, list) or not isinstance(usage, dict):
            raise ProviderError(
                f"{self.name} reply lacks content or usage; check AGENTQUEUE_ANTHROPIC_BASE_URL "
                "points at a Messages API.",
                retryable=False,
                code="provider_bad_response",
            )
        output = "".join(
            str(block.get("text", ""))
            for block in content
            if isinstance(block, dict) and block.get("type") == "text"
        )
        cache_read = int(usage.get("cache_read_input_tokens") or 0)
        cache_write = int(usage.get("cache_creation_input_tokens") or 0)
        raw_stop = body.get("stop_reason")
        return ProviderResponse(
            output=output,
            usage=TokenUsage(
                input_tokens=int(usage.get("input_tokens") or 0) + cache_read + cache_write,
                output_tokens=int(usage.get("output_tokens") or 0),
                cached_input_tokens=cache_read,
            ),
            model=str(body.get("model") or request.model),
            finish_reason=_STOP_REASONS.get(raw_stop, "stop"),
            service_tier=str(usage.get("service_tier") or "standard"),
            extra={
                "response_id": body.get("id"),
                "finish_reason_reported": raw_stop,
                "service_tier_reported": usage.get("service_tier"),
                "cache_creation_input_tokens": cache_write,
                "attempts": reply.attempts,
                "maybe_repeated": reply.maybe_repeated,
            },
            possibly_repeated=reply.maybe_repeated,
        )
