"""`HttpProvider`: what every HTTP provider shares; subclasses say how to ask and how to read.

A subclass names its endpoint (`name`, `path`, `default_base_url`) and its authentication
header, and turns a `ProviderRequest` into a JSON body and a JSON reply into a
`ProviderResponse`. The pooled transport, retries, redaction, the settings it is built from
and closing live here once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypedDict, Unpack

from pydantic import SecretStr

from agentqueue.providers.backoff import BackoffPolicy
from agentqueue.providers.base import ProviderError, ProviderRequest, ProviderResponse
from agentqueue.providers.connection_pool import PoolConfig
from agentqueue.providers.http_transport import (
    HttpTransport,
    JsonReply,
    ResponseObserver,
    model_ids,
)
from agentqueue.providers.redaction import secret_text
from agentqueue.settings import Settings

_JSON_HEADERS = {"content-type": "application/json", "accept": "application/json"}


class TransportOptions(TypedDict, total=False):
    """How an HTTP provider connects: its connection pool and retry schedule."""

    pool: PoolConfig | None
    backoff: BackoffPolicy | None


class HttpOptions(TransportOptions, total=False):
    """The keyword arguments every HTTP provider takes: where it connects, and how."""

    base_url: str
    api_key: str | SecretStr | None


def transport_options(settings: Settings) -> TransportOptions:
    """The connection pool (`AGENTQUEUE_HTTP_*`) and retry schedule (`AGENTQUEUE_PROVIDER_*`)
    every HTTP provider uses."""
    pool = PoolConfig(
        max_connections=settings.http_max_connections,
        max_connections_per_host=settings.http_max_connections_per_host,
        keepalive_s=settings.http_keepalive_s,
        timeout_s=settings.http_timeout_s,
    )
    backoff = BackoffPolicy(
        max_attempts=settings.provider_max_attempts,
        base_s=settings.provider_backoff_base_s,
        max_s=settings.provider_backoff_max_s,
        max_retry_after_s=settings.provider_max_retry_after_s,
    )
    return {"pool": pool, "backoff": backoff}


class HttpProvider:
    """POSTs one JSON request per call to `base_url + path` over one pooled client that every
    thread shares. Errors name `AGENTQUEUE_<NAME>_API_KEY` / `_BASE_URL`."""

    name: str
    path: ClassVar[str]
    models_path: ClassVar[str]  # the model listing (`GET`)
    default_base_url: ClassVar[str]

    def __init__(
        self, *, headers: Mapping[str, str] | None = None, **options: Unpack[HttpOptions]
    ) -> None:
        key = secret_text(options.get("api_key"))
        all_headers = {**_JSON_HEADERS, **(headers or {})}
        if key:
            all_headers.update(self.auth_headers(key))
        variable = f"AGENTQUEUE_{self.name.upper()}"
        self._transport = HttpTransport(
            provider=self.name,
            base_url=options.get("base_url") or self.default_base_url,
            headers=all_headers,
            secrets=[key],
            pool=options.get("pool"),
            backoff=options.get("backoff"),
            key_variable=f"{variable}_API_KEY",
            url_variable=f"{variable}_BASE_URL",
        )

    def auth_headers(self, key: str) -> dict[str, str]:
        """The headers that carry the API key."""
        raise NotImplementedError

    @property
    def pool_size(self) -> int:
        return self._transport.pool.size

    def complete(self, request: ProviderRequest) -> ProviderResponse:
        """One call; raises `ProviderError` (see `HttpTransport`) on failure. The response
        counts earlier requests that may have been billed (`possibly_repeated`)."""
        reply = self._transport.post_json(
            self.path,
            self._body(request),
            request_id=request.request_id,
            resend_maybe_sent=request.repeatable,
        )
        try:
            return self._response(request, reply)
        except ProviderError as error:  # an unreadable answer after possibly billed attempts
            error.maybe_sent += reply.maybe_repeated
            raise

    def _body(self, request: ProviderRequest) -> dict[str, Any]:
        raise NotImplementedError

    def _response(self, request: ProviderRequest, reply: JsonReply) -> ProviderResponse:
        raise NotImplementedError

    def list_models(self) -> list[str] | None:
        """Ids of the models the endpoint serves, or None when it lists none (or fails)."""
        return model_ids(self._transport.get_json(self.models_path))

    def observe_responses(self, observer: ResponseObserver) -> None:
        """Tell `observer` (model, status, headers) of every reply, for shared rate limits;
        a 429 then goes back to the caller at once instead of being retried here."""
        self._transport.observer = observer

    def close(self) -> None:
        self._transport.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._transport!r})"
