"""Plain HTTP for batch endpoints: one attempt per call (beat's next run is the retry)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from agentqueue.providers.base import ProviderError
from agentqueue.providers.redaction import Redactor


class BatchHttp:
    """JSON, file upload and raw download against one base URL; failures are `ProviderError`s
    whose text never holds the key."""

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        headers: Mapping[str, str],
        secrets: list[str | None],
        timeout_s: float,
    ) -> None:
        self.provider = provider
        self._redact = Redactor(secrets)
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), headers=dict(headers), timeout=timeout_s
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        files: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        try:
            response = self._client.request(
                method, path, json=json, files=files, data=data, params=params
            )
        except httpx.HTTPError as error:
            raise ProviderError(
                self._redact(f"{self.provider} batch call {path} failed: {type(error).__name__}"),
                retryable=True,
                code="provider_unavailable",
            ) from None
        if response.status_code >= 400:
            retryable = response.status_code in (408, 409, 429) or response.status_code >= 500
            raise ProviderError(
                self._redact(
                    f"{self.provider} batch call {path} answered {response.status_code}: "
                    f"{response.text[:300]}"
                ),
                retryable=retryable,
                code="provider_error",
            )
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body = self.request(method, path, **kwargs).json()
        if not isinstance(body, dict):
            raise ProviderError(
                f"{self.provider} batch call {path} did not answer a JSON object",
                retryable=False,
                code="provider_bad_response",
            )
        return body

    def close(self) -> None:
        self._client.close()
