"""`model="auto"`: pick a catalog model meeting the job's requirements, by price or by score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from agentqueue.budget.catalog import Catalog, CatalogModel
from agentqueue.budget.errors import NoModelMeetsRequirements, UnknownModelPrice
from agentqueue.budget.pricing import PriceBook, PricedModel
from agentqueue.budget.tokens import output_token_bound, worst_case_cost
from agentqueue.jobs import Requirements

# `cheapest`: lowest estimated cost that qualifies (the default); `balanced`: weighted score.
SelectionMode = Literal["cheapest", "balanced"]


@dataclass(frozen=True, slots=True)
class SelectionWeights:
    """How much cost, quality and speed count; each criterion is normalised across candidates."""

    cost: float = 0.4
    quality: float = 0.4
    speed: float = 0.2

    def __post_init__(self) -> None:
        weights = (self.cost, self.quality, self.speed)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError("selection weights must be non-negative and not all zero")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A priced catalog model that can take the job's input, with its worst-case cost."""

    entry: CatalogModel
    priced: PricedModel
    max_output_tokens: int
    worst_case_usd: Decimal


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """The chosen model and the one line that explains why."""

    candidate: Candidate
    reason: str
    fell_back: bool = False

    @property
    def model(self) -> str:
        return self.candidate.entry.id


def candidates_for(
    catalog: Catalog,
    prices: PriceBook,
    *,
    input_tokens: int,
    requested_max_tokens: int | None,
    default_max_tokens: int,
    service_tier: str = "standard",
    at: datetime | None = None,
) -> list[Candidate]:
    """Catalog models with a known price whose context window holds the input and output,
    each priced on `service_tier` or the tier it falls back to (see `price_best_tier`)."""
    found = []
    for entry in catalog.models:
        try:
            priced = prices.price_best_tier(entry.id, service_tier, provider=entry.provider, at=at)
        except UnknownModelPrice:
            continue  # fail closed: an unpriced model is never a candidate
        output = output_token_bound(
            requested_max_tokens,
            default_max_tokens=default_max_tokens,
            model_limit=entry.max_output_tokens,
        )
        if input_tokens + output > entry.context_window:
            continue
        found.append(
            Candidate(entry, priced, output, worst_case_cost(priced, input_tokens, output))
        )
    return found


def unmet_requirements(candidate: Candidate, requirements: Requirements) -> list[str]:
    """Which requirements `candidate` misses, as short phrases (empty when it qualifies)."""
    missed = []
    if requirements.min_quality is not None and candidate.entry.quality < requirements.min_quality:
        missed.append(f"min_quality {requirements.min_quality}")
    if (
        requirements.max_latency_ms is not None
        and candidate.entry.latency_ms > requirements.max_latency_ms
    ):
        missed.append(f"max_latency_ms {requirements.max_latency_ms}")
    if (
        requirements.max_cost_usd is not None
        and candidate.worst_case_usd > requirements.max_cost_usd
    ):
        missed.append(f"max_cost_usd {requirements.max_cost_usd}")
    return missed


def _normalised(value: float, low: float, high: float) -> float:
    return 1.0 if high == low else (value - low) / (high - low)


def score(candidates: Sequence[Candidate], weights: SelectionWeights) -> dict[str, float]:
    """Weighted score per model id: cheaper, better and faster each push towards 1."""
    costs = [float(c.worst_case_usd) for c in candidates]
    qualities = [c.entry.quality for c in candidates]
    latencies = [float(c.entry.latency_ms) for c in candidates]
    scores = {}
    for candidate in candidates:
        cost = 1 - _normalised(float(candidate.worst_case_usd), min(costs), max(costs))
        quality = _normalised(candidate.entry.quality, min(qualities), max(qualities))
        speed = 1 - _normalised(float(candidate.entry.latency_ms), min(latencies), max(latencies))
        scores[candidate.entry.id] = (
            weights.cost * cost + weights.quality * quality + weights.speed * speed
        ) / (weights.cost + weights.quality + weights.speed)
    return scores


def _pick(
    candidates: Sequence[Candidate], weights: SelectionWeights, mode: SelectionMode
) -> tuple[Candidate, str]:
    if mode == "cheapest":
        # Ties on cost go to the better model, then the faster one.
        best = min(
            candidates,
            key=lambda c: (c.worst_case_usd, -c.entry.quality, c.entry.latency_ms, c.entry.id),
        )
        return best, f"cheapest, quality {best.entry.quality}, up to ${best.worst_case_usd}"
    scores = score(candidates, weights)
    best = max(candidates, key=lambda c: (scores[c.entry.id], -c.worst_case_usd, c.entry.id))
    return best, (
        f"score {scores[best.entry.id]:.2f}: quality {best.entry.quality}, "
        f"~{best.entry.latency_ms} ms, up to ${best.worst_case_usd}"
    )


def select_model(
    candidates: Sequence[Candidate],
    requirements: Requirements,
    *,
    weights: SelectionWeights,
    mode: SelectionMode = "cheapest",
    pressure: bool = False,
) -> ModelChoice:
    """Choose among `candidates` one meeting `requirements`, by `mode`; `pressure` only
    says in the reason that budget pressure forced `cheapest`.

    Raises:
        NoModelMeetsRequirements: nothing qualifies and the job does not allow a fallback
            (or there is no candidate at all).
    """
    qualifying = [c for c in candidates if not unmet_requirements(c, requirements)]
    rule = f"{mode}, budget pressure" if pressure else mode
    if qualifying:
        best, why = _pick(qualifying, weights, mode)
        return ModelChoice(
            best, f"auto ({rule}): {best.entry.id}, {why}, of {len(qualifying)} qualifying"
        )
    wanted = _describe(requirements)
    if not candidates:
        raise NoModelMeetsRequirements(f"{wanted}; no priced catalog model fits the input")
    if not requirements.allow_fallback:
        raise NoModelMeetsRequirements(f"{wanted}; none of {len(candidates)} catalog models")
    best, why = _pick(candidates, weights, mode)
    missed = ", ".join(unmet_requirements(best, requirements))
    return ModelChoice(
        best,
        f"auto fallback ({rule}): none of {len(candidates)} models met {wanted}; "
        f"{best.entry.id} ({why}) misses {missed}",
        fell_back=True,
    )


def _describe(requirements: Requirements) -> str:
    parts = [
        f"{name} {value}"
        for name, value in (
            ("min_quality", requirements.min_quality),
            ("max_latency_ms", requirements.max_latency_ms),
            ("max_cost_usd", requirements.max_cost_usd),
        )
        if value is not None
    ]
    return ", ".join(parts) or "no requirements"
