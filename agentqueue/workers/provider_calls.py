"""Concurrent provider calls for a batch, each behind the cache's single-flight and the
shared rate limits and circuit breaker (`CallGuard`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from agentqueue.cache.entry import CacheEntry
from agentqueue.cache.request import CacheRequest
from agentqueue.jobs import AgentJob
from agentqueue.providers import ProviderError, ProviderRequest, ProviderResponse
from agentqueue.workers.context import WorkerContext

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PlannedCall:
    job: AgentJob
    model: str
    max_tokens: int
    service_tier: str
    cache: CacheRequest | None
    input_tokens: int = 0  # the estimate: with max_tokens, what the call takes from TPM
    can_fall_back: bool = False
    # The job's calls of unknown outcome so far (see `JobWork`), journaled with its answer.
    carried_repeat: bool = False
    sent_in_transit: int = 0
    # False: a request that may have reached the provider is never sent again (see
    # `Settings.repeat_allowed`).
    repeatable: bool = True


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """`entry` on success; `from_peer` when another identical call's answer was reused.
    `possibly_repeated`: earlier requests of this call that may have reached the provider and
    been billed before failing in transit (a failed call says so in `error.maybe_sent`)."""

    entry: CacheEntry | None = None
    error: ProviderError | None = None
    from_peer: bool = False
    possibly_repeated: int = 0


def request_for(call: PlannedCall) -> ProviderRequest:
    job = call.job
    return ProviderRequest(
        model=call.model,
        messages=[m.model_dump(exclude_none=True) for m in job.messages],
        max_tokens=call.max_tokens,
        temperature=job.params.temperature,
        top_p=job.params.top_p,
        stop=job.params.stop,
        seed=job.params.seed,
        service_tier=call.service_tier,
        request_id=job.id,
        repeatable=call.repeatable,
    )


def call_all(context: WorkerContext, calls: Sequence[PlannedCall]) -> dict[str, CallOutcome]:
    """Run every call (concurrently when more than one); one failure never affects others."""
    outcomes = context.calls.run_each(lambda call: _call(context, call), calls)
    return {call.job.id: outcome for call, outcome in zip(calls, outcomes, strict=True)}


def _call(context: WorkerContext, call: PlannedCall) -> CallOutcome:
    if call.cache is None:
        return _complete(context, call)
    with context.cache.single_flight(call.cache) as ticket:
        if ticket.entry is not None:
            return CallOutcome(entry=ticket.entry, from_peer=True)
        outcome = _complete(context, call)
        if outcome.entry is not None:
            ticket.complete(outcome.entry)
        return outcome


def _complete(context: WorkerContext, call: PlannedCall) -> CallOutcome:
    started = time.perf_counter()
    outcome = _call_provider(context, call)
    error = outcome.error
    context.metrics.provider_call(
        call.model, time.perf_counter() - started, error.code if error is not None else None
    )
    return outcome


def _call_provider(context: WorkerContext, call: PlannedCall) -> CallOutcome:
    try:
        response = context.guard.complete(
            request_for(call),
            priority=call.job.priority.value,
            tokens=call.input_tokens + call.max_tokens,
            can_fall_back=call.can_fall_back,
            provider=context.provider,
        )
    except ProviderError as error:
        return CallOutcome(error=error)
    except Exception as error:  # a provider bug must fail one job, not the batch
        log.exception("provider raised unexpectedly for job %s", call.job.id)
        return CallOutcome(
            error=ProviderError(f"provider failed: {type(error).__name__}", retryable=False)
        )
    entry = entry_for(response, provider=context.provider.name)
    # Paid for: written down before anything else can fail, so no retry pays for it again;
    # with the calls of unknown outcome, so a retry settling from it charges them too.
    context.journal.record(
        call.job.id,
        entry,
        possibly_repeated=call.sent_in_transit + response.possibly_repeated,
        carried_over=call.carried_repeat,
    )
    return CallOutcome(entry=entry, possibly_repeated=response.possibly_repeated)


def entry_for(response: ProviderResponse, *, provider: str) -> CacheEntry:
    """The cache entry of a provider's answer (stored only if `storable`)."""
    return CacheEntry(
        output=response.output,
        model=response.model,
        provider=provider,
        usage=response.usage,
        finish_reason=response.finish_reason,
    )
