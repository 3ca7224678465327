"""Which models the configured endpoint really serves: read at worker start and every few
minutes (the provider's model listing, `GET /v1/models`), or taken from
`AGENTQUEUE_SERVED_MODELS`, so that `auto` and fallbacks choose only among models that are
both priced and served."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from agentqueue.settings import Settings

log = logging.getLogger(__name__)

ModelLister = Callable[[], "list[str] | None"]


class ServedModels:
    """The served model ids (lower-case), or None while unknown (then nothing is excluded)."""

    def __init__(
        self,
        lister: ModelLister | None,
        *,
        configured: Iterable[str] | None = None,
        refresh_s: float = 300.0,
    ) -> None:
        """`lister`: the provider's `list_models` (None for providers that have none)."""
        self.lister = lister
        self.refresh_s = refresh_s
        self._fixed = None if configured is None else frozenset(m.lower() for m in configured)
        self._models: frozenset[str] | None = self._fixed
        self._next_refresh = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, lister: ModelLister | None) -> ServedModels:
        configured = (
            [m.strip() for m in settings.served_models.split(",") if m.strip()]
            if settings.served_models
            else None
        )
        return cls(lister, configured=configured, refresh_s=settings.served_models_refresh_s)

    @property
    def models(self) -> frozenset[str] | None:
        self.refresh_if_due()
        return self._models

    def serves(self, model: str) -> bool:
        models = self.models
        return models is None or model.lower() in models

    def refresh_if_due(self) -> None:
        if self._fixed is not None or self.lister is None:
            return
        if time.monotonic() < self._next_refresh:
            return
        with self._lock:
            if time.monotonic() < self._next_refresh:
                return
            self._next_refresh = time.monotonic() + self.refresh_s
        try:
            listed = self.lister()
        except Exception as error:  # a listing problem must never stop jobs
            log.warning("could not list served models (%s)", type(error).__name__)
            return
        if listed is None:
            log.info("the endpoint lists no models; every priced model counts as served")
            return
        self._models = frozenset(m.lower() for m in listed)
        log.info("the endpoint serves %d model(s)", len(self._models))
