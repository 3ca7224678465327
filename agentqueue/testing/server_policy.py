"""What the LLM test server refuses before answering: unserved models, outages, rate limits."""

from __future__ import annotations

from typing import Any

from agentqueue.testing.model_list import ModelList
from agentqueue.testing.outages import Outages
from agentqueue.testing.server_limits import LimitDecision, ServerRateLimits, request_tokens


class Refusal:
    """Why the server will not serve a request (`status` 0: it will, with these headers)."""

    def __init__(
        self, status: int, kind: str, message: str, label: str | None, headers: dict[str, str]
    ) -> None:
        self.status, self.kind, self.message = status, kind, message
        self.label, self.headers = label, headers

    @classmethod
    def from_limits(cls, model: str, decision: LimitDecision) -> Refusal:
        if decision.allowed:
            return cls(0, "", "", None, decision.headers)
        return cls(
            429,
            "rate_limit_error",
            f"Rate limit reached for {model}; try again in {decision.retry_after_s:.3f}s",
            "rate_limited",
            decision.headers,
        )


class ServerPolicy:
    """The served models, per-model limits and scripted outages of one server."""

    def __init__(
        self,
        models: list[str] | None = None,
        limits: dict[str, tuple[int | None, int | None]] | None = None,
        burst_s: float = 1.0,
    ) -> None:
        self.models = ModelList(models)
        self.limits = ServerRateLimits(burst_s)
        for name, (rpm, tpm) in (limits or {}).items():
            self.limits.set(name, rpm=rpm, tpm=tpm)
        self.outages = Outages()

    def describe(self) -> dict[str, Any]:
        return {
            "models": self.models.models,
            "limits": self.limits.describe(),
            "outages": self.outages.describe(),
        }

    def refusal(self, model: str, body: dict[str, Any]) -> Refusal | None:
        """An unserved model, an outage or a rate limit, in that order; None when unlimited."""
        if not self.models.serves(model):
            return Refusal(
                404,
                "not_found_error",
                f"The model `{model}` does not exist or you do not have access to it.",
                "model_not_found",
                {},
            )
        outage = self.outages.active(model)
        if outage is not None:
            return Refusal(outage.status, "api_error", f"{model} is unavailable", outage.spec, {})
        decision = self.limits.take(model, request_tokens(body))
        if decision.allowed and not decision.headers:
            return None
        return Refusal.from_limits(model, decision)

    def configure(self, path: str, data: dict[str, Any]) -> None:
        """`POST /_limits {model, rpm, tpm}`, `/_outage {model, seconds, status, start_in_s}`,
        `/_models {models}` (null serves any); ValueError/KeyError/TypeError on bad input."""
        if path == "/_limits":
            self.limits.set(str(data["model"]), rpm=data.get("rpm"), tpm=data.get("tpm"))
        elif path == "/_outage":
            self.outages.add(
                data.get("model"),
                float(data["seconds"]),
                status=int(data.get("status", 503)),
                start_in_s=float(data.get("start_in_s", 0.0)),
            )
        else:
            models = data["models"]
            self.models = ModelList(None if models is None else [str(m) for m in models])
