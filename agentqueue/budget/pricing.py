"""Per-token prices of a model and tier: genai-prices' bundled data plus the override file."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any, Literal, Protocol

from genai_prices import Usage, data_snapshot
from genai_prices import types as genai_types

from agentqueue.budget.errors import UnknownModelPrice
from agentqueue.budget.price_overrides import SERVICE_TIERS, PriceOverrides, TokenRates
from agentqueue.money import MONEY_QUANTUM

MILLION = Decimal(1_000_000)

# How each of our tiers is named in genai-prices' request context.
_TIER_CONTEXT: dict[str, dict[str, str] | None] = {
    "standard": None,
    "flex": {"service_tier": "flex"},
    "priority": {"service_tier": "priority"},
    "batch": {"processing": "batch"},
}

TierSource = Literal["standard", "data", "multiplier", "no_tier_price"]

# Where a wanted tier has no price of its own, the next cheaper-than-standard tier is tried:
# work that could wait for a batch can run on flex, and anything can run on standard.
TIER_FALLBACKS: dict[str, tuple[str, ...]] = {
    "batch": ("batch", "flex", "standard"),
    "flex": ("flex", "standard"),
    "priority": ("priority", "standard"),
    "standard": ("standard",),
}


def to_money(amount: Decimal) -> Decimal:
    """Round up to the ledger's 10 decimal places (a reservation stays conservative)."""
    return amount.quantize(MONEY_QUANTUM, rounding=ROUND_CEILING)


class PricedModel(Protocol):
    """A model priced for one service tier; `cost` never returns $0 for a non-empty call."""

    @property
    def model(self) -> str: ...

    @property
    def provider(self) -> str | None: ...

    @property
    def service_tier(self) -> str: ...

    @property
    def rates(self) -> TokenRates: ...

    @property
    def tier_source(self) -> TierSource: ...

    def cost(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> Decimal:
        """USD for this usage; `input_tokens` includes the cached ones."""
        ...


@dataclass(frozen=True, slots=True)
class GenaiPricedModel:
    """A model from genai-prices' bundled data, priced exactly as `genai_prices.calc_price` does."""

    model: str
    provider: str | None
    service_tier: str
    rates: TokenRates
    tier_source: TierSource
    model_price: Any  # genai_prices.types.ModelPrice
    multiplier: Decimal = Decimal(1)
    # (input, cached input, output) per MTok when flat arithmetic gives exactly genai-prices'
    # result for text-token usage; None sends every call through genai_prices itself.
    flat: tuple[Decimal, Decimal, Decimal] | None = None

    def cost(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> Decimal:
        cached = min(max(cached_input_tokens, 0), input_tokens)
        if self.flat is not None:
            input_rate, cached_rate, output_rate = self.flat
            total = (
                (input_tokens - cached) * input_rate
                + cached * cached_rate
                + output_tokens * output_rate
            ) / MILLION
        else:
            usage = Usage(
                input_tokens=input_tokens, cache_read_tokens=cached, output_tokens=output_tokens
            )
            total = self.model_price.calc_price(usage)["total_price"]
        return total * self.multiplier


@dataclass(frozen=True, slots=True)
class FlatPricedModel:
    """A model priced by the override file at flat per-token rates."""

    model: str
    provider: str | None
    service_tier: str
    rates: TokenRates
    tier_source: TierSource
    multiplier: Decimal = Decimal(1)

    def cost(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> Decimal:
        cached = min(max(cached_input_tokens, 0), input_tokens)
        total = (
            (input_tokens - cached) * self.rates.input_per_mtok
            + cached * self.rates.cached_rate
            + output_tokens * self.rates.output_per_mtok
        ) / MILLION
        return total * self.multiplier


def _base_rate(value: Any) -> Decimal | None:
    if isinstance(value, genai_types.TieredPrices):
        return value.base
    return value if isinstance(value, Decimal) else None


# Price keys that cannot apply to a call reporting only input, cached-input and output tokens
# (cache writes and tool calls are not reported, so they count zero).
_FLAT_SAFE_KEYS = frozenset(
    {
        "input_mtok",
        "output_mtok",
        "cache_read_mtok",
        "cache_write_mtok",
        "cache_write_5m_mtok",
        "cache_write_1h_mtok",
        "web_searches_kcount",
        "storage_searches_kcount",
    }
)


def _flat_rates(model_price: Any) -> tuple[Decimal, Decimal, Decimal] | None:
    """Flat per-MTok rates when they reproduce genai-prices exactly, else None (tiers, per
    request fees or modality prices need its full calculation)."""
    used = {key for key, value in model_price.__dict__.items() if value is not None}
    if not used <= _FLAT_SAFE_KEYS:
        return None
    input_rate, output_rate = model_price.input_mtok, model_price.output_mtok
    cached_rate = model_price.cache_read_mtok
    rates = (input_rate, output_rate) + (() if cached_rate is None else (cached_rate,))
    if not all(isinstance(rate, Decimal) for rate in rates):
        return None
    return (input_rate, input_rate if cached_rate is None else cached_rate, output_rate)


def _genai_priced(
    model: str,
    provider: str,
    service_tier: str,
    rates: TokenRates,
    tier_source: TierSource,
    model_price: Any,
    multiplier: Decimal = Decimal(1),
) -> GenaiPricedModel:
    return GenaiPricedModel(
        model,
        provider,
        service_tier,
        rates,
        tier_source,
        model_price,
        multiplier,
        _flat_rates(model_price),
    )


def _tier_in_data(model: Any, context: dict[str, str], moment: datetime) -> bool:
    """Whether the data prices this tier at `moment` (variants may start on a given date)."""
    for variant in model.price_variants or ():
        if variant.constraint is not None and not variant.constraint.active(moment):
            continue
        if all(context.get(key) == value for key, value in variant.when.items()) and any(
            price is not None for price in variant.prices.__dict__.values()
        ):
            return True
    return False


class PriceBook:
    """Resolves `(model, service tier)` to a `PricedModel`; unknown or zero prices refuse."""

    def __init__(self, overrides: PriceOverrides | None = None) -> None:
        self.overrides = overrides or PriceOverrides()
        self._cache: dict[tuple[str, str, str | None, date], PricedModel] = {}
        self._lock = threading.Lock()

    def price(
        self,
        model: str,
        service_tier: str = "standard",
        *,
        provider: str | None = None,
        at: datetime | None = None,
    ) -> PricedModel:
        """The prices of `model` on `service_tier` at time `at` (now by default).

        Raises:
            UnknownModelPrice: neither the override file nor genai-prices prices the model,
                or its input or output price is missing or zero.
            ValueError: for a service tier we do not know.
        """
        if service_tier not in SERVICE_TIERS:
            raise ValueError(f"unknown service tier {service_tier!r}; use one of {SERVICE_TIERS}")
        moment = at or datetime.now(UTC)
        key = (model.lower(), service_tier, provider, moment.date())
        priced = self._cache.get(key)
        if priced is None:
            priced = self._resolve(model, service_tier, provider, moment)
            with self._lock:
                if len(self._cache) > 4096:
                    self._cache.clear()
                self._cache[key] = priced
        return priced

    def price_best_tier(
        self,
        model: str,
        service_tier: str,
        *,
        provider: str | None = None,
        at: datetime | None = None,
    ) -> PricedModel:
        """The price on `service_tier`, or on the first tier of its fallbacks that has a price
        of its own; the result's `service_tier` says which tier the job really runs on.

        Raises:
            UnknownModelPrice: the model has no standard price.
            ValueError: for a service tier we do not know.
        """
        if service_tier not in TIER_FALLBACKS:
            raise ValueError(f"unknown service tier {service_tier!r}; use one of {SERVICE_TIERS}")
        for tier in TIER_FALLBACKS[service_tier]:
            priced = self.price(model, tier, provider=provider, at=at)
            if priced.tier_source != "no_tier_price":
                return priced
        return priced  # pragma: no cover - the standard tier always has its own price

    def _multiplier(self, service_tier: str) -> Decimal | None:
        return self.overrides.tier_multipliers.get(service_tier)

    def _resolve(
        self, model: str, service_tier: str, provider: str | None, moment: datetime
    ) -> PricedModel:
        override = self.overrides.models.get(model.lower())
        if override is not None:
            return self._from_override(model, service_tier, override)
        return self._from_genai(model, service_tier, provider, moment)

    def _from_override(self, model: str, service_tier: str, override: Any) -> PricedModel:
        base = TokenRates(
            input_per_mtok=override.input_per_mtok,
            output_per_mtok=override.output_per_mtok,
            cached_input_per_mtok=override.cached_input_per_mtok,
        )
        if service_tier == "standard":
            return FlatPricedModel(model, override.provider, service_tier, base, "standard")
        if service_tier in override.tiers:
            rates = override.tiers[service_tier]
            return FlatPricedModel(model, override.provider, service_tier, rates, "data")
        multiplier = self._multiplier(service_tier)
        if multiplier is not None:
            return FlatPricedModel(
                model, override.provider, service_tier, base, "multiplier", multiplier
            )
        return FlatPricedModel(model, override.provider, service_tier, base, "no_tier_price")

    def _from_genai(
        self, model: str, service_tier: str, provider: str | None, moment: datetime
    ) -> PricedModel:
        snapshot = data_snapshot.get_snapshot()
        try:
            found_provider, info = snapshot.find_provider_model(model, None, provider, None)
        except LookupError:
            if provider is None:
                raise UnknownModelPrice(model, service_tier) from None
            # The catalog's provider name may not be genai-prices' id; try by model alone.
            try:
                found_provider, info = snapshot.find_provider_model(model, None, None, None)
            except LookupError:
                raise UnknownModelPrice(model, service_tier) from None
        standard = info.get_prices(moment)
        rates = self._rates(model, service_tier, standard)
        context = _TIER_CONTEXT[service_tier]
        if context is None:
            return _genai_priced(
                model, found_provider.id, service_tier, rates, "standard", standard
            )
        if _tier_in_data(info, context, moment):
            tier_price = info.get_prices(moment, context)
            tier_rates = self._rates(model, service_tier, tier_price)
            return _genai_priced(
                model, found_provider.id, service_tier, tier_rates, "data", tier_price
            )
        multiplier = self._multiplier(service_tier)
        if multiplier is not None:
            return _genai_priced(
                model, found_provider.id, service_tier, rates, "multiplier", standard, multiplier
            )
        # No cheaper price known: charging the standard rate can only over-count, never under.
        return _genai_priced(
            model, found_provider.id, service_tier, rates, "no_tier_price", standard
        )

    @staticmethod
    def _rates(model: str, service_tier: str, model_price: Any) -> TokenRates:
        input_rate = _base_rate(model_price.input_mtok)
        output_rate = _base_rate(model_price.output_mtok)
        if not input_rate or not output_rate:
            # Free or partial prices (embeddings, moderation) would count chat output as $0.
            raise UnknownModelPrice(model, service_tier)
        return TokenRates(
            input_per_mtok=input_rate,
            output_per_mtok=output_rate,
            cached_input_per_mtok=_base_rate(model_price.cache_read_mtok),
        )
