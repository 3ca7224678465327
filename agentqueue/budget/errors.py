"""Budget errors users can hit, each with a stable code and a sentence saying what to do."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from agentqueue.errors import AgentQueueError


class UnknownModelPrice(AgentQueueError):
    """The model has no price, so its cost cannot be bounded: refuse rather than count $0."""

    code = "unknown_model_price"

    def __init__(self, model: str, service_tier: str = "standard") -> None:
        super().__init__(
            f"no price is known for model {model!r} ({service_tier} tier); use a priced model "
            "or add it to the prices file (AGENTQUEUE_PRICES_FILE)"
        )
        self.model = model


class NoModelMeetsRequirements(AgentQueueError):
    """`model="auto"` found no catalog model meeting the job's requirements."""

    code = "no_model_meets_requirements"

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"no catalog model meets the requirements ({detail}); relax min_quality, "
            "max_latency_ms or max_cost_usd, or set allow_fallback"
        )


class BudgetExceeded(AgentQueueError):
    """The job's worst-case cost does not fit a hard budget limit: the money spent leaves no
    room for it, or the room other jobs' reservations held did not come free in time."""

    code = "budget_exceeded"

    def __init__(
        self,
        *,
        scope: str,
        period: str,
        window_label: str,
        window_start: datetime,
        limit_usd: Decimal,
        spent_usd: Decimal,
        reserved_usd: Decimal,
        needed_usd: Decimal,
        waited_s: float | None = None,
    ) -> None:
        from agentqueue.money import format_usd

        budget = f"the {period} budget of {scope} ({format_usd(limit_usd)} for {window_label})"
        needs = f"this job needs up to {format_usd(needed_usd)}"
        if waited_s is None:
            why = (
                f"{budget} is used up: {format_usd(spent_usd)} of {format_usd(limit_usd)} is "
                f"spent and {needs}"
            )
        else:
            why = (
                f"{budget} had no room for this job after waiting {waited_s:.0f} s: "
                f"{format_usd(spent_usd)} of {format_usd(limit_usd)} is spent, "
                f"{format_usd(reserved_usd)} reserved by running jobs, and {needs}"
            )
        super().__init__(
            f"{why}; raise the limit with `agentqueue budget set`, lower max_tokens, or "
            "submit again in the next window"
        )
        self.scope = scope
        self.period = period
        self.window_start = window_start
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.reserved_usd = reserved_usd
        self.used_usd = spent_usd + reserved_usd
        self.needed_usd = needed_usd
        self.waited_s = waited_s


class InvalidBudgetFile(AgentQueueError):
    """A prices or catalog file could not be read; the message names the file and the problem."""

    code = "invalid_budget_file"
