"""What the levers that are not in the ledger saved: context pruning and right-sizing.

The ledger records the cache's avoided cost and the cheaper tier's standard price; pruning and
right-sizing leave no such trace, so their saving is priced here the same way for the workers'
metrics and for `agentqueue report`: the tokens not sent, or the model not bought, at the
prices of the job's service tier.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from agentqueue.budget.errors import UnknownModelPrice
from agentqueue.budget.planning import JobPlanner, RunOption
from agentqueue.budget.pricing import PriceBook, to_money
from agentqueue.jobs import AgentJob

ZERO = Decimal(0)

# The levers, as the metrics' `lever` label and the report name them; a cache hit is
# "cache_<tier>", a cheaper tier its own name ("flex", "batch").
LEVER_RIGHT_SIZING = "right_sizing"
LEVER_PRUNING = "pruning"
CACHE_LEVER_PREFIX = "cache_"


def pruning_saving(
    prices: PriceBook, model: str, service_tier: str, tokens_saved: int, *, at: datetime
) -> Decimal:
    """The input tokens pruning kept out of the request, at the model's input price."""
    if tokens_saved <= 0:
        return ZERO
    try:
        priced = prices.price(model, service_tier, at=at)
    except UnknownModelPrice:
        return ZERO
    return to_money(priced.cost(tokens_saved, 0))


def right_sizing_saving(
    planner: JobPlanner,
    job: AgentJob,
    service_tier: str,
    *,
    at: datetime,
    input_tokens: int,
    output_tokens: int,
    cost: Decimal,
) -> Decimal:
    """What the model `auto` picks without budget pressure would have cost for the same
    usage, less what the cheaper model chosen under pressure cost (never below zero)."""
    if job.model != "auto" or job.requirements is None:
        return ZERO
    weighted = planner.plan(job, service_tier, at).weighted
    if not isinstance(weighted, RunOption):
        return ZERO
    try:
        priced = planner.prices.price(
            weighted.model, service_tier, provider=weighted.provider, at=at
        )
    except UnknownModelPrice:
        return ZERO
    return max(ZERO, to_money(priced.cost(input_tokens, output_tokens)) - cost)
