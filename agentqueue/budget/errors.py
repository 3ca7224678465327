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
    """Reserving the job's worst-case cost would cross a hard budget limit."""

    code = "budget_exceeded"

    def __init__(
        self,
        *,
        scope: str,
        period: str,
        window_label: str,
        window_start: datetime,
        limit_usd: Decimal,
        used_usd: Decimal,
        needed_usd: Decimal,
    ) -> None:
        from agentqueue.money import format_usd

        super().__init__(
            f"the {period} budget of {scope} ({format_usd(limit_usd)} for {window_label}) "
            f"would be exceeded: {format_usd(used_usd)} is spent or reserved and this job "
            f"needs up to {format_usd(needed_usd)}; raise the limit with `agentqueue budget "
            "set`, lower max_tokens, or submit again in the next window"
        )
        self.scope = scope
        self.period = period
        self.window_start = window_start
        self.limit_usd = limit_usd
        self.used_usd = used_usd
        self.needed_usd = needed_usd


class InvalidBudgetFile(AgentQueueError):
    """A prices or catalog file could not be read; the message names the file and the problem."""

    code = "invalid_budget_file"
