"""The verdict on one job at the current budget usage: run (and reserve), defer, wait for
room other jobs' reservations hold, or reject."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from agentqueue.budget.errors import BudgetExceeded
from agentqueue.budget.ledger import Reservation
from agentqueue.budget.periods import Period, Window
from agentqueue.budget.planning import JobPlan, RunOption
from agentqueue.budget.policy import BudgetAction, BudgetLadder, Decision
from agentqueue.budget.usage_view import UsageView
from agentqueue.budget.waiting import Waiters, WaitLimit, waiting_label
from agentqueue.errors import AgentQueueError
from agentqueue.persistence.ledger_entries import Entry, EntryState
from agentqueue.persistence.usage_rows import LiveUsage


@dataclass(frozen=True)
class Admission:
    """The gate's verdict on one job, with its reservation: for `run`, what the ledger
    holds; otherwise the model it would have used and $0. `already_settled` marks a
    redelivered job that has finished before: the caller skips it (its result is already
    recorded)."""

    job_id: str
    decision: Decision
    reservation: Reservation
    error: AgentQueueError | None = None
    already_settled: bool = False
    # Reserved by an earlier attempt that never settled: that attempt may have called the
    # provider (unless its answer was journaled).
    carried_over: bool = False
    waiting_for: str | None = None  # "wait": the budget ("<period>:<scope>") it waits for
    retry_after_s: float = 0.0  # "wait": when to ask again


def admission_from_entry(entry: Entry) -> Admission:
    """What a job that already has a ledger entry gets back (a redelivery)."""
    finished = entry.state in (EntryState.SETTLED, EntryState.CACHE_HIT)
    reservation = Reservation(
        model=entry.model,
        provider=entry.provider,
        service_tier=entry.service_tier,
        reserved_usd=Decimal(0) if finished else entry.reserved_usd,
        input_tokens_estimate=entry.input_tokens_estimate,
        max_output_tokens=entry.max_output_tokens,
        model_reason=entry.model_reason,
        budget_action=entry.budget_action,
    )
    return Admission(
        entry.job_id,
        "run",
        reservation,
        already_settled=finished,
        carried_over=entry.state is EntryState.RESERVED,
    )


class AdmissionRules:
    """Applies the ladder and the hard limits to a planned job under the locked usage rows."""

    def __init__(
        self,
        ladder: BudgetLadder,
        *,
        timezone: str,
        defer_min_slack_s: int,
        max_wait_s: float = 0.0,
    ) -> None:
        self.ladder = ladder
        self.timezone = timezone
        self.defer_min_slack = timedelta(seconds=defer_min_slack_s)
        self.wait_limit = WaitLimit(timedelta(seconds=max_wait_s))

    def decide(
        self,
        plan: JobPlan,
        view: UsageView,
        windows: dict[Period, Window],
        *,
        moment: datetime,
        service_tier: str,
        defer_allowed: bool,
        waiting_since: datetime | None = None,
        waiters: Waiters | None = None,
    ) -> tuple[Reservation | None, Admission]:
        """The reservation to make (None unless the job runs) and the admission to report.

        A job refused only because of other jobs' reservations waits instead (bounded by the
        wait limit and its deadline); a job a more urgent waiter is ahead of waits too.
        `waiters` learns of each new waiter, so later jobs of the same batch queue behind it.
        """
        job = plan.job
        deferrable = defer_allowed and (
            job.deadline is None or job.deadline - moment > self.defer_min_slack
        )
        ladder = self.ladder.decide(view.utilisation(), job.priority.value, deferrable=deferrable)
        action = None if ladder.action is BudgetAction.NONE else ladder.action.value
        option = plan.option(ladder.selection_mode)

        def verdict(
            decision: Decision,
            label: str | None,
            error: AgentQueueError | None = None,
        ) -> Admission:
            chosen = option if isinstance(option, RunOption) else None
            reservation = Reservation(
                model=chosen.model if chosen else job.model,
                provider=chosen.provider if chosen and decision != "reject" else None,
                service_tier=service_tier,
                reserved_usd=chosen.worst_case_usd if chosen and decision == "run" else Decimal(0),
                input_tokens_estimate=plan.input_tokens,
                max_output_tokens=chosen.max_output_tokens if chosen else 0,
                model_reason=chosen.reason if chosen and decision != "reject" else None,
                budget_action=label,
            )
            return Admission(job.id, decision, reservation, error)

        needed = option.worst_case_usd if isinstance(option, RunOption) else Decimal(0)
        refuse = BudgetAction.REFUSE.value

        def wait_or_refuse(row: LiveUsage) -> tuple[None, Admission]:
            """Room is held by reservations only: wait for it, unless the wait is over."""
            gone = view.first_spent_out(needed, self.ladder.refuse_at)
            if gone is not None:
                return None, verdict("reject", refuse, self._exceeded(gone, windows, needed))
            backoff = self.wait_limit.backoff_s(
                moment=moment, since=waiting_since, deadline=job.deadline
            )
            if backoff is None:
                waited = (moment - (waiting_since or moment)).total_seconds()
                error = self._exceeded(row, windows, needed, waited_s=waited)
                return None, verdict("reject", refuse, error)
            label = waiting_label(row)
            if waiters is not None:
                waiters.add(job.priority.value, label)
            waiting = replace(verdict("wait", action), waiting_for=label, retry_after_s=backoff)
            return None, waiting

        tightest = view.tightest()
        if ladder.decision == "reject" and tightest is not None:
            if not isinstance(option, RunOption):
                return None, verdict("reject", refuse, self._exceeded(tightest, windows, needed))
            return wait_or_refuse(tightest)
        if not isinstance(option, RunOption):
            return None, verdict("reject", action, option)
        if ladder.decision == "defer":
            return None, verdict("defer", action)
        crossed = view.first_crossed(option.worst_case_usd)
        if crossed is not None:
            return wait_or_refuse(crossed)
        ahead = waiters.ahead_of(job.priority.value, view.budgeted) if waiters else None
        if ahead is not None:
            return wait_or_refuse(ahead)
        admission = verdict("run", action)
        return admission.reservation, admission

    def _exceeded(
        self,
        row: LiveUsage,
        windows: dict[Period, Window],
        needed: Decimal,
        *,
        waited_s: float | None = None,
    ) -> BudgetExceeded:
        window = windows[Period(row.period)]
        return BudgetExceeded(
            scope=row.scope,
            period=row.period,
            window_label=f"{window.label()} {self.timezone}",
            window_start=row.window_start,
            limit_usd=row.limit if row.limit is not None else Decimal(0),
            spent_usd=row.spent,
            reserved_usd=row.reserved,
            needed_usd=needed,
            waited_s=waited_s,
        )
