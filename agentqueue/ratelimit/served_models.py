"""Which models the configured endpoint really serves: read at worker start and every few
minutes (`GET /v1/models`), or taken from `AGENTQUEUE_SERVED_MODELS`, so that `auto` and
fallbacks choose only among models that are both priced and served."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

import httpx

from agentqueue.settings import Settings

log = logging.getLogger(__name__)

LIST_TIMEOUT_S = 5.0


class ServedModels:
    """The served model ids (lower-case), or None while unknown (then nothing is excluded)."""

    def __init__(
        self,
        *,
        url: str | None,
        headers: dict[str, str] | None = None,
        configured: Iterable[str] | None = None,
        refresh_s: float = 300.0,
    ) -> None:
        self.url = url
        self.headers = headers or {}
        self.refresh_s = refresh_s
        self._fixed = None if configured is None else frozenset(m.lower() for m in configured)
        self._models: frozenset[str] | None = self._fixed
        self._next_refresh = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ServedModels:
        configured = (
            [m.strip() for m in settings.served_models.split(",") if m.strip()]
            if settings.served_models
            else None
        )
        refresh = settings.served_models_refresh_s
        if settings.provider == "openai":
            headers = {"accept": "application/json"}
            if settings.openai_api_key is not None:
                headers["authorization"] = f"Bearer {settings.openai_api_key.get_secret_value()}"
            url = settings.openai_base_url.rstrip("/") + "/models"
            return cls(url=url, headers=headers, configured=configured, refresh_s=refresh)
        if settings.provider == "anthropic":
            headers = {
                "accept": "application/json",
                "anthropic-version": settings.anthropic_version,
            }
            if settings.anthropic_api_key is not None:
                headers["x-api-key"] = settings.anthropic_api_key.get_secret_value()
            url = settings.anthropic_base_url.rstrip("/") + "/v1/models?limit=1000"
            return cls(url=url, headers=headers, configured=configured, refresh_s=refresh)
        return cls(url=None, configured=configured, refresh_s=refresh)

    @property
    def models(self) -> frozenset[str] | None:
        self.refresh_if_due()
        return self._models

    def serves(self, model: str) -> bool:
        models = self.models
        return models is None or model.lower() in models

    def refresh_if_due(self) -> None:
        if self._fixed is not None or self.url is None or time.monotonic() < self._next_refresh:
            return
        with self._lock:
            if time.monotonic() < self._next_refresh:
                return
            self._next_refresh = time.monotonic() + self.refresh_s
        listed = self._fetch()
        if listed is not None:
            self._models = listed

    def _fetch(self) -> frozenset[str] | None:
        """The listing, or None (keeping what we knew) if the endpoint has none or is down."""
        assert self.url is not None
        try:
            reply = httpx.get(self.url, headers=self.headers, timeout=LIST_TIMEOUT_S)
        except httpx.HTTPError as error:
            log.warning(
                "could not list served models (%s); keeping the last list", type(error).__name__
            )
            return None
        if reply.status_code != 200:
            log.info(
                "the endpoint lists no models (HTTP %d); every model counts as served",
                reply.status_code,
            )
            return None
        try:
            data = reply.json().get("data")
            found = frozenset(str(item["id"]).lower() for item in data)
        except (ValueError, AttributeError, KeyError, TypeError):
            log.warning("the model listing is not in the expected shape; ignoring it")
            return None
        log.info("endpoint serves %d model(s)", len(found))
        return found
