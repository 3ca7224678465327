"""Chat Completions over pooled HTTP: OpenAI and compatible servers (vLLM, Ollama, proxies)."""

from __future__ import annotations

from typing import Any, Unpack
from urllib.parse import urlsplit

from agentqueue.providers.base import (
    FinishReason,
    ProviderError,
    ProviderRequest,
    ProviderResponse,
    TokenUsage,
)
from agentqueue.providers.http_provider import HttpOptions, HttpProvider, transport_options
from agentqueue.providers.http_transport import JsonReply
from agentqueue.providers.simulated import count_tokens
from agentqueue.settings import Settings

_FINISH_REASONS: dict[str | None, FinishReason] = {
    None: "stop",
    "stop": "stop",
    "tool_calls": "stop",
    "function_call": "stop",
    "length": "length",
    "content_filter": "error",
}
# OpenAI reports "default" for the standard tier; agentqueue prices by "standard".
_TIER_NAMES = {None: "standard", "default": "standard", "auto": "standard"}


class OpenAICompatibleProvider(HttpProvider):
    """`POST {base_url}/chat/completions` through one pooled client shared by all threads."""

    name = "openai"
    path = "/chat/completions"
    models_path = "/models"
    default_base_url = "https://api.openai.com/v1"

    def __init__(
        self, *, max_tokens_field: str | None = None, **options: Unpack[HttpOptions]
    ) -> None:
        """`max_tokens_field`: OpenAI's own API wants `max_completion_tokens` (its reasoning
        models reject `max_tokens`); most compatible servers only know `max_tokens`. Default:
        the former for OpenAI's host, the latter elsewhere."""
        super().__init__(**options)
        base_url = options.get("base_url") or self.default_base_url
        is_openai = urlsplit(base_url).hostname == "api.openai.com"
        self.max_tokens_field = max_tokens_field or (
            "max_completion_tokens" if is_openai else "max_tokens"
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAICompatibleProvider:
        return cls(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            **transport_options(settings),
        )

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {key}"}

    def _body(self, request: ProviderRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            self.max_tokens_field: request.max_tokens,
        }
        optional = {
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stop": request.stop,
            "seed": request.seed,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        if request.service_tier == "flex":
            body["service_tier"] = "flex"
        return body

    def _response(self, request: ProviderRequest, reply: JsonReply) -> ProviderResponse:
        body = reply.body
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ProviderError(
                f"{self.name} reply has no choices; check AGENTQUEUE_OPENAI_BASE_URL points at "
                "a Chat Completions API.",
                retryable=False,
                code="provider_bad_response",
            )
        choice = choices[0]
        message = choice.get("message") or {}
        raw_finish = choice.get("finish_reason")
        reported_tier = body.get("service_tier")
        output = str(message.get("content") or "")
        usage = body.get("usage")
        return ProviderResponse(
            output=output,
            usage=_usage(usage) if isinstance(usage, dict) else _estimated_usage(request, output),
            model=str(body.get("model") or request.model),
            finish_reason=_FINISH_REASONS.get(raw_finish, "stop"),
            service_tier=_TIER_NAMES.get(reported_tier, str(reported_tier)),
            extra={
                "response_id": body.get("id"),
                "finish_reason_reported": raw_finish,
                "service_tier_reported": reported_tier,
                "usage_reported": isinstance(usage, dict),
                "attempts": reply.attempts,
                "maybe_repeated": reply.maybe_repeated,
            },
            possibly_repeated=reply.maybe_repeated,
        )


def _usage(usage: dict[str, Any]) -> TokenUsage:
    details = usage.get("prompt_tokens_details") or {}
    return TokenUsage(
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        cached_input_tokens=int(details.get("cached_tokens") or 0),
    )


def _estimated_usage(request: ProviderRequest, output: str) -> TokenUsage:
    """For servers reporting no usage: a count, not a free call (`usage_reported` says so)."""
    input_tokens = sum(count_tokens(str(m.get("content", ""))) + 4 for m in request.messages)
    return TokenUsage(input_tokens=input_tokens, output_tokens=count_tokens(output))
