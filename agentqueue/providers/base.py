"""The `Provider` protocol and the plain data that crosses it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from agentqueue.errors import AgentQueueError
from agentqueue.usage import TokenUsage

FinishReason = Literal["stop", "length", "error"]


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    """One chat completion to make; `messages` are OpenAI-style dicts."""

    model: str
    messages: list[dict[str, Any]]
    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    service_tier: str = "standard"
    request_id: str = ""
    # False: after a request that may have reached the provider, never send it again (the
    # job forbids repeated calls); the call fails with `call_outcome_unknown` instead.
    repeatable: bool = True


@dataclass(frozen=True, slots=True)
class ProviderResponse:
    output: str
    usage: TokenUsage
    model: str
    finish_reason: FinishReason = "stop"
    service_tier: str = "standard"
    extra: dict[str, Any] = field(default_factory=dict)
    # Earlier requests of this call that failed after the provider may have received (and
    # billed) them, before the one that answered: each is charged as a possible repeat.
    possibly_repeated: int = 0

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


class ProviderError(AgentQueueError):
    """A failed provider call; `retryable` says whether trying again may help.

    `maybe_sent`: how many requests of the call failed after the provider may have received
    them (a dropped connection, a read timeout), so may have been billed without an answer."""

    code = "provider_error"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        code: str = "provider_error",
        retry_after_s: float | None = None,
        maybe_sent: int = 0,
    ) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.maybe_sent = maybe_sent


class Provider(Protocol):
    """Something that turns a `ProviderRequest` into a `ProviderResponse` or a `ProviderError`."""

    name: str

    def complete(self, request: ProviderRequest) -> ProviderResponse: ...

    def close(self) -> None: ...
