"""OpenAI's Batch API: a JSONL file (purpose=batch) of chat requests, `POST /batches`, polled
until `completed`, `expired`, `cancelled` or `failed`, then the output and error files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import SecretStr

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
from agentqueue.providers.openai_compat import OpenAICompatibleProvider
from agentqueue.providers.redaction import secret_text
from agentqueue.settings import Settings

ENDPOINT = "/v1/chat/completions"
ENDED = frozenset({"completed", "expired", "cancelled", "failed"})
METADATA_KEY = "agentqueue_batch"
# Error codes OpenAI writes for requests it never ran (not charged).
_UNFINISHED_CODES = frozenset({"batch_expired", "batch_cancelled"})


class OpenAIBatches:
    """Batch API client for one base URL; bodies are built as the live provider builds them."""

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | SecretStr | None,
        completion_window: str = "24h",
        timeout_s: float = 60.0,
    ) -> None:
        key = secret_text(api_key)
        headers = {"authorization": f"Bearer {key}"} if key else {}
        self._http = BatchHttp(
            provider=self.name,
            base_url=base_url,
            headers=headers,
            secrets=[key],
            timeout_s=timeout_s,
        )
        self._chat = OpenAICompatibleProvider(base_url=base_url, api_key=api_key)
        self.completion_window = completion_window

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIBatches:
        return cls(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            completion_window=settings.batch_completion_window,
            timeout_s=batch_call_timeout_s(settings),
        )

    def submit(self, key: str, items: Sequence[BatchItem]) -> str:
        lines = []
        for item in items:
            body = self._chat._body(item.request)
            body.pop("service_tier", None)  # the batch is the tier
            lines.append(
                json.dumps(
                    {"custom_id": item.custom_id, "method": "POST", "url": ENDPOINT, "body": body}
                )
            )
        content = ("\n".join(lines) + "\n").encode()
        uploaded = self._http.json(
            "POST",
            "/files",
            files={"file": (f"{key}.jsonl", content, "application/jsonl")},
            data={"purpose": "batch"},
        )
        created = self._http.json(
            "POST",
            "/batches",
            json={
                "input_file_id": uploaded["id"],
                "endpoint": ENDPOINT,
                "completion_window": self.completion_window,
                "metadata": {METADATA_KEY: key},
            },
        )
        return str(created["id"])

    def find(self, key: str) -> str | None:
        after: str | None = None
        for _ in range(20):  # newest first; a batch we lost track of is recent
            params = {"limit": "100", **({"after": after} if after else {})}
            page = self._http.json("GET", "/batches", params=params)
            for batch in page.get("data") or []:
                if (batch.get("metadata") or {}).get(METADATA_KEY) == key:
                    return str(batch["id"])
            if not page.get("has_more") or not page.get("data"):
                return None
            after = str(page["data"][-1]["id"])
        return None

    def poll(self, remote_id: str, items: Sequence[BatchItem]) -> BatchPoll:
        batch = self._http.json("GET", f"/batches/{remote_id}")
        status = str(batch.get("status"))
        if status not in ENDED:
            return BatchPoll(status, ended=False)
        by_id = {item.custom_id: item for item in items}
        results: dict[str, LineResult] = {}
        for file_id in (batch.get("output_file_id"), batch.get("error_file_id")):
            if file_id:
                for line in self._lines(str(file_id)):
                    item = by_id.get(str(line.get("custom_id")))
                    if item is not None:
                        results[item.custom_id] = self._result(item, line)
        for custom_id in by_id.keys() - results.keys():
            # A failed batch (validation) or a line missing from both files: never ran.
            results[custom_id] = LineResult(unfinished=True)
        return BatchPoll(status, ended=True, results=results)

    def cancel(self, remote_id: str) -> None:
        self._http.json("POST", f"/batches/{remote_id}/cancel")

    def _lines(self, file_id: str) -> list[dict[str, Any]]:
        text = self._http.request("GET", f"/files/{file_id}/content").text
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def _result(self, item: BatchItem, line: dict[str, Any]) -> LineResult:
        error = line.get("error")
        response = line.get("response") or {}
        status = response.get("status_code")
        if isinstance(error, dict):
            code = str(error.get("code") or "provider_error")
            if code in _UNFINISHED_CODES:
                return LineResult(unfinished=True)
            return LineResult(error=line_error(status, code, str(error.get("message") or code)))
        if status != 200:
            body = response.get("body") or {}
            detail = (body.get("error") or {}) if isinstance(body, dict) else {}
            return LineResult(
                error=line_error(
                    status, "provider_error", str(detail.get("message") or f"status {status}")
                )
            )
        try:
            answer = self._chat._response(item.request, JsonReply(response["body"], 1))
        except ProviderError as failure:
            return LineResult(error=failure)
        return LineResult(response=answer)

    def close(self) -> None:
        self._http.close()
        self._chat.close()
