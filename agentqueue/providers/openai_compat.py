"""Chat Completions over pooled HTTP: OpenAI and compatible servers (vLLM, Ollama, proxies)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from agentqueue.providers.backoff import BackoffPolicy
from agentqueue.providers.base import (
    FinishReason,
    ProviderError,
    ProviderRequest,
    ProviderResponse,
    ProviderUsage,
)
from agentqueue.providers.connection_pool import PoolConfig
from agentqueue.providers.http_transport import (
    HttpTransport,
    JsonReply,
    ResponseObserver,
    model_ids,
)
from agentqueue.providers.redaction import secret_text
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


class OpenAICompatibleProvider:
    """`POST {base_url}/chat/completions` through one pooled client shared by all threads."""

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key: str | SecretStr | None = None,
        pool: PoolConfig | None = None,
        backoff: BackoffPolicy | None = None,
        max_tokens_field: str | None = None,
    ) -> None:
        """`max_tokens_field`: OpenAI's own API wants `max_completion_tokens` (its reasoning
        models reject `max_tokens`); most compatible servers only know `max_tokens`. Default:
        the former for OpenAI's host, the latter elsewhere."""
        key = secret_text(api_key)
        headers = {"content-type": "application/json", "accept": "application/json"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        self._transport = HttpTransport(
            provider=self.name,
            base_url=base_url,
            headers=headers,
            secrets=[key],
            pool=pool,
            backoff=backoff,
            key_variable="AGENTQUEUE_OPENAI_API_KEY",
            url_variable="AGENTQUEUE_OPENAI_BASE_URL",
        )
        is_openai = urlsplit(base_url).hostname == "api.openai.com"
        self.max_tokens_field = max_tokens_field or (
            "max_completion_tokens" if is_openai else "max_tokens"
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAICompatibleProvider:
        return cls(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            pool=PoolConfig.from_settings(settings),
            backoff=BackoffPolicy.from_settings(settings),
        )

    @property
    def pool_size(self) -> int:
        return self._transport.pool.size

    def complete(self, request: ProviderRequest) -> ProviderResponse:
        """One chat completion; raises `ProviderError` (see `HttpTransport`) on failure."""
        reply = self._transport.post_json(
            "/chat/completions", self._body(request), request_id=request.request_id
        )
        return self._response(request, reply)

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
            },
        )

    def list_models(self) -> list[str] | None:
        """Ids of the models the endpoint serves, or None when it lists none (or fails)."""
        return model_ids(self._transport.get_json("/models"))

    def observe_responses(self, observer: ResponseObserver) -> None:
        """Tell `observer` (model, status, headers) of every reply, for shared rate limits."""
        self._transport.observer = observer

    def close(self) -> None:
        self._transport.close()

    def __repr__(self) -> str:
        return f"OpenAICompatibleProvider({self._transport!r})"


def _usage(usage: dict[str, Any]) -> ProviderUsage:
    details = usage.get("prompt_tokens_details") or {}
    return ProviderUsage(
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        cached_input_tokens=int(details.get("cached_tokens") or 0),
    )


def _estimated_usage(request: ProviderRequest, output: str) -> ProviderUsage:
    """For servers reporting no usage: a count, not a free call (`usage_reported` says so)."""
    input_tokens = sum(count_tokens(str(m.get("content", ""))) + 4 for m in request.messages)
    return ProviderUsage(input_tokens=input_tokens, output_tokens=count_tokens(output))
