"""A provider call behind the shared rate limit and the endpoint's circuit breaker.

A call over the limit waits (sleeping, no provider call, no failure); a call to an endpoint
whose circuit is open waits for it to close, or moves to a fallback model when the job has
one. An outage that outlasts the retries of one call, or a rate-limit wait past
`AGENTQUEUE_FALLBACK_AFTER_WAIT_S`, raises `FallbackNeeded` for jobs that can fall back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Mapping

import redis

from agentqueue.providers import Provider, ProviderError, ProviderRequest, ProviderResponse
from agentqueue.ratelimit.breaker import CircuitBreaker
from agentqueue.ratelimit.limiter import LimitKey, Permit, SharedRateLimiter
from agentqueue.ratelimit.limits_file import key_id, load_rate_limits
from agentqueue.settings import Settings

log = logging.getLogger(__name__)

# A job waiting on an open circuit looks again at least this often, so it goes soon after a
# probe closes the circuit rather than at the end of the probe's allowance.
BREAKER_RECHECK_S = 1.0
# A call that failed for good, on a job without fallback, waits this long for the circuit to
# confirm an outage (open) or deny it (another call succeeds); unconfirmed, the job fails as
# before: a lone request the server keeps refusing must not hold a thread for minutes.
OUTAGE_CONFIRM_S = 3.0
CONFIRM_POLL_S = 0.2


class FallbackNeeded(ProviderError):
    """The model cannot serve this job now (outage or rate limit); `reason` says which."""

    def __init__(self, message: str, *, code: str, reason: str) -> None:
        super().__init__(message, retryable=True, code=code)
        self.reason = reason


def is_rate_limit(error: ProviderError) -> bool:
    """429s that outlasted the call's attempts or asked for too long a wait."""
    return error.code == "provider_rate_limited" or "HTTP 429" in error.message


def is_outage(error: ProviderError) -> bool:
    """5xx, connection errors and timeouts that outlasted the call's attempts (not 4xx)."""
    return error.code in ("provider_error", "provider_unavailable") and not is_rate_limit(error)


class CallGuard:
    """Calls the provider for one request at a time, under limits and breaker (thread-safe)."""

    def __init__(
        self,
        provider: Provider,
        limiter: SharedRateLimiter,
        breaker: CircuitBreaker,
        settings: Settings,
    ) -> None:
        self.provider = provider
        self.limiter = limiter
        self.breaker = breaker
        self.settings = settings
        observe = getattr(provider, "observe_responses", None)
        # Providers that report limits (the HTTP ones) always go through the shared state;
        # the simulated one only where a limit is configured for it.
        self.reports_limits = observe is not None
        if observe is not None:
            observe(self._observed)

    @classmethod
    def build(cls, settings: Settings, client: redis.Redis, provider: Provider) -> CallGuard:
        keys = {
            "openai": key_id(_secret(settings.openai_api_key)),
            "anthropic": key_id(_secret(settings.anthropic_api_key)),
        }
        limiter = SharedRateLimiter(
            client,
            load_rate_limits(settings.rate_limits_file),
            key_ids=keys,
            window_s=settings.rate_limit_burst_s,
        )
        breaker = CircuitBreaker(
            client,
            failure_threshold=settings.breaker_failure_threshold,
            window_s=settings.breaker_window_s,
            cooling_s=settings.breaker_cooling_s,
        )
        return cls(provider, limiter, breaker, settings)

    def key_for(self, model: str) -> LimitKey:
        return self.limiter.key_for(self.provider.name, model)

    def _observed(self, model: str, status: int, headers: Mapping[str, str]) -> None:
        if model:
            self.limiter.observe(self.key_for(model), status, headers)

    def complete(
        self,
        request: ProviderRequest,
        *,
        priority: str,
        tokens: int,
        can_fall_back: bool,
        provider: Provider | None = None,
    ) -> ProviderResponse:
        """The provider's answer; raises `ProviderError` (`FallbackNeeded` when it may help).
        `provider`: the worker context's current provider (default: the one built with).

        A call made again here after one that may have reached the provider (`maybe_sent`)
        counts that one in the answer's `possibly_repeated`, or marks the error it ends with."""
        provider = provider or self.provider
        key = self.key_for(request.model)
        if not self.reports_limits and not self.limiter.configured(key).known:
            return provider.complete(request)
        sent: list[ProviderError] = []  # failed calls the provider may have received
        try:
            response = self._complete(request, key, priority, tokens, can_fall_back, provider, sent)
        except ProviderError as error:
            error.maybe_sent += sum(e.maybe_sent for e in sent if e is not error)
            raise
        if sent:
            repeated = response.possibly_repeated + sum(e.maybe_sent for e in sent)
            response = dataclasses.replace(response, possibly_repeated=repeated)
        return response

    def _complete(
        self,
        request: ProviderRequest,
        key: LimitKey,
        priority: str,
        tokens: int,
        can_fall_back: bool,
        provider: Provider,
        sent: list[ProviderError],
    ) -> ProviderResponse:
        endpoint = key.name
        settings = self.settings
        started = time.monotonic()
        outage_deadline = started + settings.outage_max_wait_s
        wait_bound = (
            settings.fallback_after_wait_s if can_fall_back else settings.rate_limit_max_wait_s
        )
        rate_deadline = started + wait_bound
        while True:
            verdict = self.breaker.admit(endpoint)
            if verdict.action == "wait":
                if can_fall_back:
                    raise FallbackNeeded(
                        f"{request.model} is cooling down after repeated failures",
                        code="provider_unavailable",
                        reason=f"{request.model} circuit open",
                    )
                self._wait_out(request.model, verdict.wait_s, outage_deadline)
                continue
            permit = self.limiter.acquire(
                key,
                tokens,
                priority=priority,
                max_wait_s=max(0.0, rate_deadline - time.monotonic()),
            )
            if permit is None:
                self._rate_limited(request.model, wait_bound, can_fall_back)
            assert permit is not None
            started_ms = time.time() * 1000
            try:
                response = provider.complete(request)
            except ProviderError as error:
                if error.maybe_sent:
                    sent.append(error)
                if is_rate_limit(error) and time.monotonic() < rate_deadline:
                    continue  # the 429 taught the limiter; wait there with everyone else
                self._failed(
                    request.model, endpoint, error, can_fall_back, outage_deadline, started_ms
                )
                continue
            self._succeeded(endpoint, permit, response)
            return response

    def _succeeded(self, endpoint: str, permit: Permit, response: ProviderResponse) -> None:
        """Close the breaker and correct the token count, in one round trip."""
        used = response.usage.input_tokens + response.usage.output_tokens
        pipe = self.limiter.redis.pipeline(transaction=False)
        self.breaker.succeeded(endpoint, pipe=pipe)
        self.limiter.correct(permit, used, pipe=pipe)
        with contextlib.suppress(redis.RedisError):  # bookkeeping only: the answer stands
            pipe.execute()

    def _rate_limited(self, model: str, wait_bound: float, can_fall_back: bool) -> None:
        message = f"{model} rate limit would need a wait over {wait_bound:g} s"
        if can_fall_back:
            raise FallbackNeeded(
                message, code="provider_rate_limited", reason=f"{model} rate limited"
            )
        raise ProviderError(
            f"{message}; the job runs again later",
            retryable=True,
            code="provider_rate_limited",
            retry_after_s=wait_bound,
        )

    def _failed(
        self,
        model: str,
        endpoint: str,
        error: ProviderError,
        can_fall_back: bool,
        outage_deadline: float,
        started_ms: float,
    ) -> None:
        """Re-raise what ends the call; return to try again (an outage, for a job that waits).

        A retryable error (a transient failure the job's own retry handles), a failure while
        other calls to the endpoint succeeded (this request's own problem) and one the circuit
        does not confirm within `OUTAGE_CONFIRM_S` end the call as before; only an endpoint
        whose circuit opened makes a job without fallback wait."""
        if is_rate_limit(error):
            if can_fall_back:
                raise FallbackNeeded(error.message, code=error.code, reason=f"{model} rate limited")
            raise ProviderError(
                error.message,
                retryable=True,
                code="provider_rate_limited",
                retry_after_s=error.retry_after_s,
            )
        if error.retryable or not is_outage(error):
            raise error  # a 4xx fails the same way on any model: no fallback, no retry
        healthy = self.breaker.failed(endpoint, call_started_ms=started_ms)
        if can_fall_back:
            raise FallbackNeeded(
                error.message, code="provider_unavailable", reason=f"{model} unavailable"
            )
        if healthy or not self._outage_confirmed(endpoint, started_ms):
            raise error
        if time.monotonic() >= outage_deadline:
            raise ProviderError(
                f"{model} has been failing for over {self.settings.outage_max_wait_s:g} s "
                f"({error.message}); the job runs again later",
                retryable=True,
                code="provider_unavailable",
            )

    def _outage_confirmed(self, endpoint: str, started_ms: float) -> bool:
        deadline = time.monotonic() + OUTAGE_CONFIRM_S
        while True:
            verdict = self.breaker.confirms_outage(endpoint, since_ms=started_ms)
            if verdict is not None:
                return verdict
            if time.monotonic() >= deadline:
                return False
            time.sleep(CONFIRM_POLL_S)

    def _wait_out(self, model: str, wait_s: float, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProviderError(
                f"{model} is still cooling down after repeated failures; the job runs again later",
                retryable=True,
                code="provider_unavailable",
                retry_after_s=wait_s,
            )
        time.sleep(max(0.01, min(wait_s, remaining, BREAKER_RECHECK_S)))


def _secret(value: object) -> str | None:
    getter = getattr(value, "get_secret_value", None)
    return getter() if getter is not None else None
