"""Fit a long conversation into its model's context window before its cost is estimated."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from agentqueue.budget.catalog import Catalog
from agentqueue.budget.context_pruning import prune_messages
from agentqueue.budget.tokens import estimate_input_tokens, estimate_text_tokens
from agentqueue.jobs import AgentJob, Message


@dataclass(frozen=True, slots=True)
class Fitted:
    job: AgentJob
    tokens_saved: int


def fit_to_context(
    job: AgentJob, catalog: Catalog, *, default_max_tokens: int, chars_per_token: float
) -> Fitted:
    """The job, pruned to fit its model's window (room kept for the reply) when it does not.

    System messages, messages that score as important and the most recent ones are kept, in
    their original order. Models outside the catalog (or `auto`) are left as they are.
    """
    listed = catalog.get(job.model)
    if listed is None:
        return Fitted(job, 0)
    budget = listed.context_window - (job.params.max_tokens or default_max_tokens)
    if (
        budget <= 0
        or estimate_input_tokens(job.messages, chars_per_token=chars_per_token) <= budget
    ):
        return Fitted(job, 0)
    pruned = prune_messages(
        [m.model_dump(exclude_none=True) for m in job.messages],
        budget,
        partial(estimate_text_tokens, chars_per_token=chars_per_token),
    )
    if not pruned.tokens_saved:
        return Fitted(job, 0)
    messages = [Message.model_validate(m) for m in pruned.messages]
    return Fitted(job.model_copy(update={"messages": messages}), pruned.tokens_saved)
