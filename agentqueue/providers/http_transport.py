"""POST JSON to a provider endpoint over its connection pool, retrying what may succeed later."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agentqueue.providers.backoff import BackoffPolicy, parse_retry_after
from agentqueue.providers.base import ProviderError
from agentqueue.providers.connection_pool import EndpointPool, PoolConfig
from agentqueue.providers.http_connection import (
    ExchangeFailed,
    RawReply,
    UnusableHeader,
    UnusableUrl,
)
from agentqueue.providers.redaction import Redactor, url_secrets
from agentqueue.settings import has_userinfo

logger = logging.getLogger(__name__)
# httpx (the batch endpoints' and the alerts' client) logs every request at INFO with its full
# URL (query string included); a credential in a base URL would be written once per job. Our
# own lines say what happened, redacted.
logging.getLogger("httpx").setLevel(logging.WARNING)

# What the official OpenAI and Anthropic clients retry: timeouts, lock conflicts, rate limits and
# server errors (Anthropic's 529 "overloaded" included). Any other 4xx will fail the same way again.
_RETRYABLE_STATUSES = frozenset({408, 409, 429})
_DETAIL_LIMIT = 300
# Told (model, HTTP status, reply headers) after every reply: shared rate limits learn from it.
ResponseObserver = Callable[[str, int, Mapping[str, str]], None]


@dataclass(frozen=True)
class JsonReply:
    """A successful response body, how many attempts it took, and how many of the earlier
    attempts may have reached the provider (and been billed) before failing in transit."""

    body: dict[str, Any]
    attempts: int
    maybe_repeated: int = 0


@dataclass(frozen=True)
class _Failure:
    """Why an attempt failed, as redacted text (never the exception, which holds the headers);
    `maybe_sent` when the provider may have received the request (a billed call, no answer)."""

    reason: str
    retry_after_s: float | None = None
    maybe_sent: bool = False


class HttpTransport:
    """POSTs JSON to one endpoint over its `EndpointPool`, retrying transient failures.

    Retried: connection errors, timeouts, dropped connections, HTTP 408/409/429 and 5xx, with
    `BackoffPolicy` waits that honour `Retry-After`. After the last attempt it raises
    `ProviderError(code="provider_error", retryable=False)`. Other 4xx raise at once with a code
    naming the cause. An attempt that failed after the provider may have received the request
    (read errors and timeouts, a dropped connection; not connect or write errors, not HTTP error
    statuses) may have been billed: the reply counts them (`maybe_repeated`) and an error
    raised after one says so (`maybe_sent`), so the caller charges them (see
    `http_connection`). Every message is passed through the redactor, and no exception of the
    exchange is ever chained to a raised error.
    """

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        headers: Mapping[str, str],
        secrets: Iterable[str | None] = (),
        pool: PoolConfig | None = None,
        backoff: BackoffPolicy | None = None,
        key_variable: str = "the API key setting",
        url_variable: str = "the base URL setting",
    ) -> None:
        self.provider = provider
        self.pool = pool or PoolConfig()
        self.backoff = backoff or BackoffPolicy()
        if has_userinfo(base_url):
            raise ValueError(
                f"the {provider} base URL must not contain a user name or password; "
                f"put the credential in {key_variable}"
            )
        self._redact = Redactor([*secrets, *url_secrets(base_url)])
        self._key_variable = key_variable
        self._url_variable = url_variable
        self.base_url = self._redact(base_url)
        self._connections = EndpointPool(
            base_url, {"content-type": "application/json", **headers}, self.pool
        )
        # Set with `observer` by a shared rate limiter: a 429 then goes back to it at once
        # (to wait its turn with every other worker) instead of being retried here.
        self.observer: ResponseObserver | None = None

    def post_json(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        request_id: str = "",
        resend_maybe_sent: bool = True,
    ) -> JsonReply:
        """POST `body` to `path` under the base URL; the parsed JSON object of the 2xx reply.
        With `resend_maybe_sent=False`, a request that may have reached the provider is not
        sent again: the call fails with `call_outcome_unknown` (and `maybe_sent`)."""
        max_attempts = self.backoff.max_attempts
        failure = _Failure("no attempt made")
        maybe_sent = 0  # earlier attempts the provider may have received and billed
        for attempt in range(1, max_attempts + 1):
            if attempt > 1:
                wait_s = self.backoff.delay_s(attempt - 1, failure.retry_after_s)
                logger.warning(
                    "%s %s%s attempt %d/%d failed (%s); retrying in %.2f s",
                    self.provider,
                    path,
                    f" [{request_id}]" if request_id else "",
                    attempt - 1,
                    max_attempts,
                    failure.reason,
                    wait_s,
                )
                time.sleep(wait_s)
            try:
                outcome = self._attempt(path, body)
            except ProviderError as error:
                error.maybe_sent += maybe_sent
                raise
            if isinstance(outcome, JsonReply):
                return JsonReply(outcome.body, attempt, maybe_sent)
            failure = outcome
            maybe_sent += failure.maybe_sent
            if failure.maybe_sent and not resend_maybe_sent:
                raise ProviderError(
                    f"{self.provider} call to {path} failed after the provider may have "
                    f"received it ({failure.reason}); this job does not allow a repeated call, "
                    "so it was not sent again and is charged at its reservation",
                    retryable=False,
                    code="call_outcome_unknown",
                    maybe_sent=maybe_sent,
                )
        raise ProviderError(
            f"{self.provider} call to {path} failed after {max_attempts} attempts, last: "
            f"{failure.reason}. Check the provider's status and rate limits, or raise "
            "AGENTQUEUE_PROVIDER_MAX_ATTEMPTS.",
            retryable=False,
            code="provider_error",
            retry_after_s=failure.retry_after_s,
            maybe_sent=maybe_sent,
        )

    def get_json(self, path: str) -> dict[str, Any] | None:
        """One GET over the pool (e.g. the model listing); None on any failure, never raises."""
        try:
            with self._connections.connection() as connection:
                response = connection.get(path)
        except (ExchangeFailed, UnusableUrl, UnusableHeader):
            return None
        if response.status != 200:
            return None
        try:
            parsed = response.json()
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None

    def _attempt(self, path: str, body: Mapping[str, Any]) -> JsonReply | _Failure:
        """One HTTP exchange: a reply, a retryable failure, or a raised non-retryable error."""
        # Errors are raised after the `except` block, so no exception of the exchange rides
        # along as __context__.
        unusable_url: str | None = None
        unusable_header: str | None = None
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        try:
            with self._connections.connection() as connection:
                response = connection.post(path, payload.encode())
        except UnusableUrl as exc:
            unusable_url = self._redact(str(exc))
        except UnusableHeader as exc:
            unusable_header = self._redact(str(exc))
        except ExchangeFailed as exc:
            return _Failure(self._redact(exc.reason), maybe_sent=exc.maybe_sent)
        if unusable_header is not None:
            raise ProviderError(
                f"{self.provider} request cannot be sent: {unusable_header}; check "
                f"{self._key_variable} (a line break copied with the key?).",
                retryable=False,
                code="provider_bad_config",
            )
        if unusable_url is not None:
            raise ProviderError(
                f"{self.provider} base URL {self.base_url!r} is not usable ({unusable_url}); "
                f"fix {self._url_variable}.",
                retryable=False,
                code="provider_bad_config",
            )
        status = response.status
        if self.observer is not None:
            self.observer(str(body.get("model") or ""), status, response.headers)
        if 200 <= status < 300:
            return JsonReply(self._parse_json(response, path), 1)
        detail = self._error_detail(response)
        if status in _RETRYABLE_STATUSES or status >= 500:
            retry_after_s = parse_retry_after(response.headers.get("retry-after"))
            if status == 429 and self.observer is not None:
                raise ProviderError(
                    f"{self.provider} rate limited the request (HTTP 429: {detail}); it waits "
                    "its turn at the shared rate limit.",
                    retryable=True,
                    code="provider_rate_limited",
                    retry_after_s=retry_after_s,
                )
            if retry_after_s is not None and retry_after_s > self.backoff.max_retry_after_s:
                raise ProviderError(
                    f"{self.provider} asked to wait {retry_after_s:.0f} s (HTTP {status}: "
                    f"{detail}); run the job again later.",
                    retryable=True,
                    code="provider_rate_limited",
                    retry_after_s=retry_after_s,
                )
            return _Failure(f"HTTP {status}: {detail}", retry_after_s)
        raise self._client_error(status, detail)

    def _parse_json(self, response: RawReply, path: str) -> dict[str, Any]:
        try:
            parsed = response.json()
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise ProviderError(
                f"{self.provider} answered {path} with a body that is not a JSON object; "
                f"check that {self._url_variable} points at a compatible API.",
                retryable=False,
                code="provider_bad_response",
            )
        return parsed

    def _error_detail(self, response: RawReply) -> str:
        """The server's own error message (OpenAI and Anthropic shapes), short and redacted."""
        text = response.text
        try:
            parsed = response.json()
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            error = parsed.get("error")
            if isinstance(error, dict) and error.get("message"):
                text = str(error["message"])
            elif isinstance(error, str):
                text = error
        text = " ".join(text.split()) or response.reason
        return self._redact(text[:_DETAIL_LIMIT])

    def _client_error(self, status: int, detail: str) -> ProviderError:
        if status in (401, 403):
            code, advice = "provider_auth_error", f"check {self._key_variable}"
        elif status == 404:
            code, advice = "provider_not_found", f"check the model name and {self._url_variable}"
        else:
            code, advice = "provider_bad_request", "fix the request (model, messages, parameters)"
        return ProviderError(
            f"{self.provider} refused the request (HTTP {status}: {detail}); {advice}.",
            retryable=False,
            code=code,
        )

    def close(self) -> None:
        """Close every pooled connection; the transport cannot be used afterwards."""
        self._connections.close()

    def __repr__(self) -> str:
        return f"HttpTransport({self.provider!r}, {self.base_url!r}, pool_size={self.pool.size})"


def model_ids(listing: dict[str, Any] | None) -> list[str] | None:
    """The ids of an OpenAI or Anthropic model listing (`{"data": [{"id": ...}]}`)."""
    data = listing.get("data") if listing is not None else None
    if not isinstance(data, list):
        return None
    ids = [str(item["id"]) for item in data if isinstance(item, dict) and "id" in item]
    return ids
