"""Anthropic Message Batches: `POST /v1/messages/batches` with every request inline, polled
until `processing_status` is `ended`, then the results JSONL (unordered: by custom_id)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import SecretStr

from agentqueue.providers.anthropic import AnthropicProvider
from agentqueue.providers.base import ProviderError
from agentqueue.providers.batch_base import (
    BatchItem,
    BatchPoll,
    LineResult,
    batch_call_timeout_s,
    line_error,
)
from agentqueue.providers.batch_http import BatchHttp
from agentqueue.providers.http_transport import JsonReply
from agentqueue.providers.redaction import secret_text
from agentqueue.settings import Settings


class AnthropicBatches:
    """Message Batches client; params are built exactly as the live Messages call builds them.

    The API keeps no metadata on a batch, so `find` cannot recognise one created just before
    a crash: that narrow window (created, id not yet recorded) can submit a batch twice.
    """

    name = "anthropic"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | SecretStr | None,
        version: str = "2023-06-01",
        timeout_s: float = 60.0,
    ) -> None:
        key = secret_text(api_key)
        headers = {"anthropic-version": version, **({"x-api-key": key} if key else {})}
        self._http = BatchHttp(
            provider=self.name,
            base_url=base_url,
            headers=headers,
            secrets=[key],
            timeout_s=timeout_s,
        )
        self._messages = AnthropicProvider(base_url=base_url, api_key=api_key, version=version)

    @classmethod
    def from_settings(cls, settings: Settings) -> AnthropicBatches:
        return cls(
            base_url=settings.anthropic_base_url,
            api_key=settings.anthropic_api_key,
            version=settings.anthropic_version,
            timeout_s=batch_call_timeout_s(settings),
        )

    def submit(self, key: str, items: Sequence[BatchItem]) -> str:
        requests = [
            {"custom_id": item.custom_id, "params": self._messages._body(item.request)}
            for item in items
        ]
        created = self._http.json("POST", "/v1/messages/batches", json={"requests": requests})
        return str(created["id"])

    def find(self, key: str) -> str | None:
        return None

    def poll(self, remote_id: str, items: Sequence[BatchItem]) -> BatchPoll:
        batch = self._http.json("GET", f"/v1/messages/batches/{remote_id}")
        status = str(batch.get("processing_status"))
        if status != "ended":
            return BatchPoll(status, ended=False)
        by_id = {item.custom_id: item for item in items}
        results: dict[str, LineResult] = {}
        url = batch.get("results_url") or f"/v1/messages/batches/{remote_id}/results"
        text = self._http.request("GET", str(url)).text
        for raw in text.splitlines():
            if not raw.strip():
                continue
            line = json.loads(raw)
            item = by_id.get(str(line.get("custom_id")))
            if item is not None:
                results[item.custom_id] = self._result(item, line.get("result") or {})
        for custom_id in by_id.keys() - results.keys():
            results[custom_id] = LineResult(unfinished=True)
        return BatchPoll(status, ended=True, results=results)

    def cancel(self, remote_id: str) -> None:
        self._http.json("POST", f"/v1/messages/batches/{remote_id}/cancel")

    def _result(self, item: BatchItem, result: dict[str, Any]) -> LineResult:
        kind = result.get("type")
        if kind in ("canceled", "expired"):
            return LineResult(unfinished=True)
        if kind != "succeeded":
            error = (result.get("error") or {}).get("error") or {}
            error_type = str(error.get("type") or "api_error")
            # invalid_request_error fails again; overloaded and api errors may not.
            status = 400 if error_type == "invalid_request_error" else 500
            return LineResult(
                error=line_error(status, error_type, str(error.get("message") or error_type))
            )
        try:
            answer = self._messages._response(item.request, JsonReply(result["message"], 1))
        except ProviderError as failure:
            return LineResult(error=failure)
        return LineResult(response=answer)

    def close(self) -> None:
        self._http.close()
        self._messages.close()
