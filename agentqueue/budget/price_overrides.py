"""The operator's price file (`AGENTQUEUE_PRICES_FILE`): custom models and tier multipliers."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import Field, ValidationError, field_validator

from agentqueue.budget.budget_files import read_table_file, refused_file
from agentqueue.strict import StrictModel

SERVICE_TIERS = ("standard", "flex", "batch", "priority")


class TokenRates(StrictModel):
    """USD per million tokens; cached input defaults to the input rate."""

    input_per_mtok: Decimal = Field(gt=0, allow_inf_nan=False)
    output_per_mtok: Decimal = Field(gt=0, allow_inf_nan=False)
    cached_input_per_mtok: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)

    @property
    def cached_rate(self) -> Decimal:
        cached = self.cached_input_per_mtok
        return self.input_per_mtok if cached is None else cached


class ModelOverride(TokenRates):
    """One custom or re-priced model, with optional per-tier rates."""

    provider: str | None = Field(default=None, max_length=64)
    tiers: dict[str, TokenRates] = Field(default_factory=dict)

    @field_validator("tiers")
    @classmethod
    def _known_tiers(cls, value: dict[str, TokenRates]) -> dict[str, TokenRates]:
        unknown = set(value) - set(SERVICE_TIERS)
        if unknown:
            raise ValueError(f"unknown service tier(s) {sorted(unknown)}; use {SERVICE_TIERS}")
        return value


class PriceOverrides(StrictModel):
    """Everything in the prices file; empty when no file is configured."""

    models: dict[str, ModelOverride] = Field(default_factory=dict)
    # Pydantic turns TOML/JSON floats into Decimal through their shortest repr (0.2 stays 0.2).
    tier_multipliers: dict[str, Decimal] = Field(default_factory=dict)

    @field_validator("models")
    @classmethod
    def _lower_case_ids(cls, value: dict[str, ModelOverride]) -> dict[str, ModelOverride]:
        return {name.lower(): override for name, override in value.items()}

    @field_validator("tier_multipliers")
    @classmethod
    def _multipliers(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        unknown = set(value) - set(SERVICE_TIERS)
        if unknown:
            raise ValueError(f"unknown service tier(s) {sorted(unknown)}; use {SERVICE_TIERS}")
        for tier, factor in value.items():
            if not factor.is_finite() or factor <= 0:
                raise ValueError(f"multiplier for {tier} must be a positive number")
        return value


def load_price_overrides(path: Path | None) -> PriceOverrides:
    """Read the prices file, or return no overrides when `path` is None.

    Raises:
        InvalidBudgetFile: the file is missing, unparsable or has a bad entry.
    """
    if path is None:
        return PriceOverrides()
    setting = "AGENTQUEUE_PRICES_FILE"
    data = read_table_file(path, setting=setting)
    try:
        return PriceOverrides.model_validate(data)
    except ValidationError as exc:
        raise refused_file(path, setting, exc) from None
