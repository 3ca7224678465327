"""Move jobs whose model cannot serve them now to their next model, through the budget again.

Each moving job's reservation is released and the job re-admitted at the fallback model's
price (the ladder applies as to any job), then looked up in the cache and called. Jobs that
fail again move on, until their fallbacks run out. Calls of unknown outcome made at the model a
job leaves (requests dropped in transit, an earlier attempt's call) are charged with the
release, at that model's reservation, on a ledger row of their own: whatever happens to the
job at the next model (it runs, waits for budget room, is refused, or its step is retried),
they are charged once.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Protocol

import redis

from agentqueue.budget.gate import Admission, AdmissionGroup
from agentqueue.constants import FALLBACK_COUNTS_KEY, MAX_FALLBACKS
from agentqueue.errors import DatabaseUnavailable
from agentqueue.jobs import utcnow
from agentqueue.workers.context import WorkerContext
from agentqueue.workers.work import ExecutionReport, JobWork


class StepRunner(Protocol):
    """The executor's steps a fallback round runs again (kept apart so neither imports the
    other's module)."""

    context: WorkerContext

    def fallback_models(self, w: JobWork) -> list[str]: ...

    def apply_admission(
        self, w: JobWork, admission: Admission, now: datetime, report: ExecutionReport
    ) -> None: ...

    def look_up(self, runnable: list[JobWork]) -> None: ...

    def call(self, runnable: list[JobWork], report: ExecutionReport) -> None: ...


log = logging.getLogger(__name__)


def fall_back(
    executor: StepRunner, work: list[JobWork], service_tier: str, report: ExecutionReport
) -> None:
    """Re-admit and call every job marked with `fallback`, for as many rounds as needed."""
    context = executor.context
    for _ in range(MAX_FALLBACKS + 1):
        moving = [w for w in work if w.fallback is not None]
        if not moving:
            return
        try:
            charged = context.gate.release_moving({w.job_id: w.unknown_calls for w in moving})
        except DatabaseUnavailable as error:
            for w in moving:  # the reservations stand; the retry runs the primary again
                w.fallback = None
                report.retry[w.job_id] = error
            return
        for w in moving:
            if w.job_id in charged:  # charged with the release, never again
                _charged_apart(context, w, charged[w.job_id])
            _move(executor, w)
        now = utcnow()
        group = AdmissionGroup([w.item.job for w in moving], now, service_tier, defer_allowed=False)
        try:
            admissions = context.group_commit.admit(group)
        except DatabaseUnavailable as error:
            for w in moving:
                report.retry[w.job_id] = error
            return
        for w, admission in zip(moving, admissions, strict=True):
            executor.apply_admission(w, admission, now, report)
        held = report.deferred.keys() | report.waiting.keys()
        runnable = [w for w in moving if w.result is None and w.job_id not in held]
        executor.look_up([w for w in runnable if w.entry is None])
        executor.call([w for w in runnable if w.entry is None], report)


def _charged_apart(context: WorkerContext, w: JobWork, amount: Decimal) -> None:
    # The model the calls were made at, as the ledger's row names it (a job may ask for "auto").
    model = w.admission.reservation.model if w.admission else w.item.job.model
    what = f"{w.unknown_calls.calls} call(s) of unknown outcome at {model} charged apart"
    log.warning("job %s: %s ($%s) as it moves to a fallback", w.job_id, what, amount)
    w.note = f"{w.note}; {what}" if w.note else what
    w.carried_repeat, w.sent_in_transit = False, 0
    context.metrics.charged_apart(w.item.job, model, amount)


def _move(executor: StepRunner, w: JobWork) -> None:
    assert w.fallback is not None and w.admission is not None
    old = w.admission.reservation.model
    following = executor.fallback_models(w)
    new = following[0]
    w.tried.append(old)
    step = f"fallback from {old} ({w.fallback.reason}) to {new}"
    w.note = f"{w.note}; {step}" if w.note else step
    log.warning("job %s: %s", w.job_id, step)
    with contextlib.suppress(redis.RedisError):  # a statistic: never worth failing a job for
        executor.context.redis.hincrby(FALLBACK_COUNTS_KEY, old, 1)
    w.item = replace(w.item, job=w.item.job.model_copy(update={"model": new}))
    w.fallback = None
    w.admission = None
    w.cache = None
    w.cache_tier = None
