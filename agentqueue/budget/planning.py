"""Everything about a job's cost that does not depend on the budget, worked out before locking."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from agentqueue.budget.catalog import Catalog
from agentqueue.budget.errors import NoModelMeetsRequirements, UnknownModelPrice
from agentqueue.budget.pricing import PriceBook
from agentqueue.budget.selection import (
    SelectionMode,
    SelectionWeights,
    candidates_for,
    score,
    select_model,
    unmet_requirements,
)
from agentqueue.budget.tokens import estimate_input_tokens, output_token_bound, worst_case_cost
from agentqueue.errors import AgentQueueError
from agentqueue.jobs import AgentJob


@dataclass(frozen=True, slots=True)
class RunOption:
    """One way to run a job: model, output bound and worst-case cost (and why, for auto)."""

    model: str
    provider: str | None
    max_output_tokens: int
    worst_case_usd: Decimal
    reason: str | None


@dataclass(frozen=True, slots=True)
class JobPlan:
    """A job's input estimate and how it would run in each selection mode (or why it cannot)."""

    job: AgentJob
    input_tokens: int
    weighted: RunOption | AgentQueueError
    cheapest: RunOption | AgentQueueError

    def option(self, mode: SelectionMode) -> RunOption | AgentQueueError:
        return self.cheapest if mode == "cheapest" else self.weighted


class JobPlanner:
    """Estimates tokens, resolves `auto` both ways and prices the worst case of each job."""

    def __init__(
        self,
        catalog: Catalog,
        prices: PriceBook,
        weights: SelectionWeights,
        *,
        default_max_tokens: int,
        chars_per_token: float,
    ) -> None:
        self.catalog = catalog
        self.prices = prices
        self.weights = weights
        self.default_max_tokens = default_max_tokens
        self.chars_per_token = chars_per_token
        # Whether the endpoint serves a model; `auto` and fallbacks choose only served ones.
        self.serves: Callable[[str], bool] = lambda model: True

    def plan(self, job: AgentJob, service_tier: str, moment: datetime) -> JobPlan:
        """Both selection modes are resolved now, so the locked part only picks one."""
        input_tokens = estimate_input_tokens(job.messages, chars_per_token=self.chars_per_token)
        if job.model != "auto":
            single = self._explicit(job, input_tokens, service_tier, moment)
            return JobPlan(job, input_tokens, single, single)
        return JobPlan(
            job,
            input_tokens,
            *self._auto(job, input_tokens, service_tier, moment),
        )

    def _auto(
        self, job: AgentJob, input_tokens: int, service_tier: str, moment: datetime
    ) -> tuple[RunOption | AgentQueueError, RunOption | AgentQueueError]:
        assert job.requirements is not None  # AgentJob guarantees it for auto
        candidates = candidates_for(
            self.catalog,
            self.prices,
            input_tokens=input_tokens,
            requested_max_tokens=job.params.max_tokens,
            default_max_tokens=self.default_max_tokens,
            service_tier=service_tier,
            at=moment,
        )
        candidates = [c for c in candidates if self.serves(c.entry.id)]
        options: list[RunOption | AgentQueueError] = []
        modes: tuple[SelectionMode, SelectionMode] = ("weighted", "cheapest")
        for mode in modes:
            try:
                choice = select_model(candidates, job.requirements, weights=self.weights, mode=mode)
            except NoModelMeetsRequirements as error:
                options.append(error)
                continue
            picked = choice.candidate
            options.append(
                RunOption(
                    picked.entry.id,
                    picked.entry.provider,
                    picked.max_output_tokens,
                    picked.worst_case_usd,
                    choice.reason,
                )
            )
        return options[0], options[1]

    def fallback_models(
        self, job: AgentJob, chosen: str, service_tier: str = "standard"
    ) -> list[str]:
        """Where `job` may go if `chosen` cannot serve it, in order: for `auto`, the other
        models meeting its requirements by score; then its own `fallbacks`. Only models that
        are priced and served."""
        names: list[str] = []
        if job.model == "auto" and job.requirements is not None:
            input_tokens = estimate_input_tokens(job.messages, chars_per_token=self.chars_per_token)
            candidates = candidates_for(
                self.catalog,
                self.prices,
                input_tokens=input_tokens,
                requested_max_tokens=job.params.max_tokens,
                default_max_tokens=self.default_max_tokens,
                service_tier=service_tier,
            )
            qualifying = [c for c in candidates if not unmet_requirements(c, job.requirements)]
            scores = score(qualifying, self.weights) if qualifying else {}
            names += [c.entry.id for c in sorted(qualifying, key=lambda c: -scores[c.entry.id])]
        names += job.fallbacks
        found: list[str] = []
        for name in names:
            if name.lower() == chosen.lower() or name in found or not self.serves(name):
                continue
            try:
                self.prices.price(name, service_tier)
            except UnknownModelPrice:
                continue
            found.append(name)
        return found

    def _explicit(
        self, job: AgentJob, input_tokens: int, service_tier: str, moment: datetime
    ) -> RunOption | AgentQueueError:
        listed = self.catalog.get(job.model)
        try:
            priced = self.prices.price(
                job.model, service_tier, provider=listed.provider if listed else None, at=moment
            )
        except UnknownModelPrice as error:
            return error
        max_output = output_token_bound(
            job.params.max_tokens,
            default_max_tokens=self.default_max_tokens,
            model_limit=listed.max_output_tokens if listed else None,
        )
        return RunOption(
            job.model,
            listed.provider if listed else priced.provider,
            max_output,
            worst_case_cost(priced, input_tokens, max_output),
            None,
        )
