"""Which model names a deployment knows (priced or in the catalog), and did-you-mean for typos."""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterable

from genai_prices import data_snapshot

from agentqueue.budget.catalog import Catalog
from agentqueue.budget.errors import UnknownModelPrice
from agentqueue.budget.pricing import PriceBook
from agentqueue.jobs import JobValidationError

# difflib's default cut-off (0.6) also "corrects" names that share little more than a vendor
# prefix; 0.75 keeps `gpt4o-mini` -> `gpt-4o-mini` and drops wild guesses.
SUGGESTION_CUTOFF = 0.75


class UnknownModel(JobValidationError):
    """A model that is neither priced nor in the catalog: refused at submit, not by a worker."""

    code = "unknown_model"

    def __init__(self, model: str, suggestion: str | None, *, field: str = "model") -> None:
        hint = f"; did you mean {suggestion!r}?" if suggestion else ""
        super().__init__(
            f"{field}: model {model!r} is neither priced nor in the catalog{hint} "
            "(add it to AGENTQUEUE_PRICES_FILE to use a custom model)",
            code="unknown_model",
            field=field,
        )
        self.model = model
        self.suggestion = suggestion


class KnownModels:
    """Answers "is this model usable here?" the way the worker will: priced, or catalogued."""

    def __init__(self, catalog: Catalog, prices: PriceBook) -> None:
        self.catalog = catalog
        self.prices = prices
        self._names: list[str] | None = None
        self._lock = threading.Lock()

    def is_known(self, model: str) -> bool:
        if model == "auto" or self.catalog.get(model) is not None:
            return True
        try:
            self.prices.price(model)
        except UnknownModelPrice:
            return False
        return True

    def check(self, models: Iterable[tuple[str, str]]) -> None:
        """Raise `UnknownModel` (with a suggestion) for the first unknown `(field, model)`."""
        for field, model in models:
            if not self.is_known(model):
                raise UnknownModel(model, self.suggest(model), field=field)

    def suggest(self, model: str) -> str | None:
        """The closest known name: catalog and override models first, then genai-prices'."""
        preferred = [m.id for m in self.catalog.models] + list(self.prices.overrides.models)
        for names in (preferred, self._priced_names()):
            close = difflib.get_close_matches(model.lower(), names, n=1, cutoff=SUGGESTION_CUTOFF)
            if close:
                return close[0]
        return None

    def _priced_names(self) -> list[str]:
        with self._lock:
            if self._names is None:
                snapshot = data_snapshot.get_snapshot()
                self._names = sorted(
                    {model.id for provider in snapshot.providers for model in provider.models}
                )
            return self._names
