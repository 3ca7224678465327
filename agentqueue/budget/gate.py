"""The budget gate the worker calls: admit (model, ladder, reservation), settle, release."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker

from agentqueue.budget.admission import Admission, AdmissionRules, admission_from_entry
from agentqueue.budget.alerts import AlertSink, BudgetAlert, BudgetAlerts
from agentqueue.budget.budget_limits import read_budgets
from agentqueue.budget.cache_hits import CacheHit, record_cache_hits_in
from agentqueue.budget.catalog import load_catalog
from agentqueue.budget.errors import BudgetExceeded
from agentqueue.budget.ledger import Ledger, Reservation, ReservationRequest
from agentqueue.budget.periods import Period, Window, current_windows
from agentqueue.budget.planning import JobPlanner
from agentqueue.budget.policy import BudgetLadder
from agentqueue.budget.possible_repeats import PossibleRepeat
from agentqueue.budget.price_overrides import load_price_overrides
from agentqueue.budget.pricing import PriceBook
from agentqueue.budget.scopes import scopes_for
from agentqueue.budget.selection import SelectionWeights
from agentqueue.budget.state import BudgetState, utilisation_of
from agentqueue.budget.usage_view import UsageView, utilisation
from agentqueue.budget.waiting import Waiters
from agentqueue.constants import BUDGET_WAITERS_MATTER_AT
from agentqueue.jobs import AgentJob
from agentqueue.persistence import jobs_repository
from agentqueue.persistence.jobs_repository import PRIORITY_RANK
from agentqueue.persistence.ledger_entries import EntryState
from agentqueue.persistence.transactions import in_transaction
from agentqueue.persistence.usage_rows import LiveUsage, UsageKey
from agentqueue.settings import Settings
from agentqueue.usage import TokenUsage

__all__ = ["Admission", "AdmissionGroup", "AdmittedGroups", "BudgetGate", "CacheHit"]


@dataclass(frozen=True)
class AdmissionGroup:
    """Jobs admitted together on one service tier, with or without leave to defer."""

    jobs: Sequence[AgentJob]
    now: datetime
    service_tier: str = "standard"
    defer_allowed: bool = True
    # Job id -> when it began waiting for budget room (jobs asking again after a wait).
    waiting_since: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class AdmittedGroups:
    """The admissions of each group, in order, and the budgets they were weighed against."""

    admissions: list[list[Admission]]
    budgeted_rows: list[LiveUsage]
    windows: dict[Period, Window]


class BudgetGate:
    """Admits jobs against the shared ledger and settles what they really cost."""

    def __init__(
        self,
        sessionmaker: sessionmaker[Session],
        settings: Settings,
        *,
        alert_sink: AlertSink | None = None,
    ) -> None:
        self.settings = settings
        self.timezone = settings.timezone
        self.prices = PriceBook(load_price_overrides(settings.prices_file))
        self.catalog = load_catalog(settings.catalog_file)
        self.weights = SelectionWeights(
            cost=settings.selection_weight_cost,
            quality=settings.selection_weight_quality,
            speed=settings.selection_weight_speed,
        )
        self.ladder = BudgetLadder.from_settings(settings)
        self.planner = JobPlanner(
            self.catalog,
            self.prices,
            self.weights,
            default_max_tokens=settings.default_max_tokens,
            chars_per_token=settings.chars_per_token,
            selection=settings.selection,
        )
        self.rules = AdmissionRules(
            self.ladder,
            timezone=settings.timezone,
            defer_min_slack_s=settings.budget_defer_min_slack_s,
            max_wait_s=settings.budget_max_wait_s,
        )
        self.max_wait = timedelta(seconds=settings.budget_max_wait_s)
        self.ledger = Ledger(sessionmaker, self.prices)
        self.alerts = BudgetAlerts(
            sessionmaker,
            self.ladder,
            sink=alert_sink,
            webhook_url=settings.budget_webhook_url,
            webhook_timeout_s=settings.budget_webhook_timeout_s,
        )
        self.sessions = sessionmaker
        # A worker past its time limit is dead; twice the limit leaves room for retries.
        self.stale_after_s = settings.reservation_stale_after_s or settings.job_time_limit_s * 2

    # Admission.

    def admit_groups(self, groups: Sequence[AdmissionGroup]) -> list[list[Admission]]:
        """`admit_groups_in` in a transaction of its own, then `announce`.

        Raises:
            DatabaseUnavailable: the database is unreachable; retry later, run nothing.
        """
        if not any(group.jobs for group in groups):
            return [[] for _ in groups]
        admitted = in_transaction(self.sessions, lambda s: self.admit_groups_in(s, groups))
        self.announce(admitted)
        return admitted.admissions

    def admit_groups_in(
        self,
        session: Session,
        groups: Sequence[AdmissionGroup],
        *,
        entry_states: Mapping[str, EntryState | None] | None = None,
    ) -> AdmittedGroups:
        """Choose each job's model, estimate its worst case, apply the ladder and reserve every
        `run` job against all its scopes, for several groups inside the caller's transaction
        (each group keeps its own tier and deferral rule); the admissions of each group, in
        order. All groups are admitted at the latest of their moments, so every reservation
        shares its windows. Idempotent by job id: a reserved job gets its reservation back; a
        settled one comes back with `already_settled`. A group with `defer_allowed=False`
        (jobs released from deferral) runs instead of deferring again. Once the transaction
        has committed, pass the result to `announce`. `entry_states`: the jobs' ledger entry
        states as this transaction has already read them (None: no entry), to skip reading
        them again.
        """
        jobs = [job for group in groups for job in group.jobs]
        if not jobs:
            return AdmittedGroups([[] for _ in groups], [], {})
        moment = max(group.now for group in groups)
        windows = current_windows(moment, self.timezone)
        plans = {}
        group_of: dict[str, AdmissionGroup] = {}
        for group in groups:
            for job in group.jobs:
                plans[job.id] = self.planner.plan(job, group.service_tier, moment)
                group_of[job.id] = group
        window_ends: dict[UsageKey, datetime] = {}
        requests = []
        keys_of: dict[tuple[str, str], tuple[UsageKey, ...]] = {}
        for job in jobs:
            keys = keys_of.get((job.tenant, job.agent_type))
            if keys is None:
                keys = tuple(
                    (scope, period.value, window.start)
                    for scope in scopes_for(job.tenant, job.agent_type)
                    for period, window in windows.items()
                )
                keys_of[(job.tenant, job.agent_type)] = keys
                window_ends.update({key: windows[Period(key[1])].end for key in keys})
            requests.append(
                ReservationRequest(
                    job.id,
                    job.tenant,
                    job.agent_type,
                    keys,
                    windows[Period.DAILY].first_day.isoformat(),
                )
            )

        waiters = Waiters()

        def observe(session: Session, budgeted: Sequence[LiveUsage]) -> None:
            waiters.most_urgent.clear()  # the transaction may be a rerun
            # Order among waiters matters where room is scarce; on a budget less than half
            # used only a job needing over half the limit can wait, so the common case (a
            # budget far from full) skips the query.
            if any(utilisation(row) >= BUDGET_WAITERS_MATTER_AT for row in budgeted):
                since = moment - self.max_wait
                for priority, label in jobs_repository.budget_waiters(session, since=since):
                    waiters.add(priority, label)

        def decide(
            request: ReservationRequest, view: UsageView
        ) -> tuple[Reservation | None, Admission]:
            group = group_of[request.job_id]
            return self.rules.decide(
                plans[request.job_id],
                view,
                windows,
                moment=moment,
                service_tier=group.service_tier,
                defer_allowed=group.defer_allowed,
                waiting_since=group.waiting_since.get(request.job_id),
                waiters=waiters,
            )

        # The most urgent jobs first, so they take the room there is (and waiters queue).
        requests.sort(key=lambda r: PRIORITY_RANK.get(plans[r.job_id].job.priority.value, 9))
        result = self.ledger.reserve_many_in(
            session,
            requests,
            window_ends,
            decide,
            now=moment,
            observe=observe,
            known_states=entry_states,
        )
        admitted = []
        for group in groups:
            admissions = []
            for job in group.jobs:
                entry = result.existing.get(job.id)
                admissions.append(
                    admission_from_entry(entry) if entry is not None else result.decisions[job.id]
                )
            admitted.append(admissions)
        return AdmittedGroups(admitted, result.budgeted_rows, windows)

    def announce(self, admitted: AdmittedGroups) -> None:
        """Alert on the budgets an admission (now committed) took past a threshold or refused
        a job on."""
        if not admitted.budgeted_rows:
            return
        windows = admitted.windows
        admissions = [a for group in admitted.admissions for a in group]
        rows = admitted.budgeted_rows
        states = {row.key: self._state(row, windows[Period(row.period)]) for row in rows}
        self.alerts.check(states.values())
        refused = {
            (error.scope, error.period, error.window_start)
            for admission in admissions
            if isinstance(error := admission.error, BudgetExceeded)
        }
        if refused:
            self.alerts.check([states[key] for key in refused if key in states], refused=True)

    def _state(self, row: LiveUsage, window: Window) -> BudgetState:
        limit = row.limit if row.limit is not None else Decimal(0)
        utilisation = utilisation_of(row.used, limit)
        return BudgetState(
            scope=row.scope,
            period=row.period,
            window_start=window.start,
            window_end=window.end,
            window_label=window.label(),
            spent_usd=row.spent,
            reserved_usd=row.reserved,
            limit_usd=limit,
            utilisation=utilisation,
            action=self.ladder.action_for(utilisation).value,
        )

    # Settlement, inside the caller's transaction.

    def settle_in(
        self,
        session: Session,
        usages: Mapping[str, TokenUsage],
        *,
        now: datetime | None = None,
        possible_repeats: Mapping[str, PossibleRepeat] | None = None,
    ) -> dict[str, Decimal]:
        """Charge the provider-reported usage of each job (job id -> usage); job id -> actual
        cost. Idempotent: a settled job returns its recorded cost and is not charged again.
        Jobs in `possible_repeats` are also charged their calls of unknown outcome at their
        reservation (see `Ledger.settle_in`)."""
        if not usages:
            return {}
        return self.ledger.settle_in(
            session,
            usages=usages,
            now=now or datetime.now(UTC),
            possible_repeats=possible_repeats,
        )

    def record_cache_hits_in(
        self, session: Session, hits: Sequence[CacheHit], *, now: datetime | None = None
    ) -> None:
        """Ledger rows of $0 spent with the cost avoided; a live reservation is released."""
        if not hits:
            return
        moment = now or datetime.now(UTC)
        day = current_windows(moment, self.timezone)[Period.DAILY].first_day.isoformat()
        record_cache_hits_in(session, self.prices, hits, now=moment, day=day)

    def release_many(self, job_ids: Sequence[str]) -> None:
        """Drop the reservations of failed jobs; idempotent, settled jobs are left alone."""
        if job_ids:
            self.ledger.release_many(list(job_ids), now=datetime.now(UTC))

    def release_moving(self, charged_apart: Mapping[str, PossibleRepeat]) -> dict[str, Decimal]:
        """Drop the reservations of jobs moving to a fallback model, charging their calls of
        unknown outcome (job id -> calls; none for a job that made none) on a ledger row of
        their own; job id -> amount charged (see `Ledger.release_moving`)."""
        if not charged_apart:
            return {}
        return self.ledger.release_moving(charged_apart, now=datetime.now(UTC))

    def sweep_stale_reservations(self, *, older_than_s: int | None = None) -> int:
        """Release reservations of workers that died between reserve and settle (beat task)."""
        seconds = self.stale_after_s if older_than_s is None else older_than_s
        return self.ledger.sweep_stale(older_than=timedelta(seconds=seconds))

    # Reports.

    def snapshot(self, *, now: datetime | None = None) -> list[BudgetState]:
        """Every configured budget in its current window with utilisation and ladder action."""
        windows = current_windows(now or datetime.now(UTC), self.timezone)
        states = []
        for budget in read_budgets(self.sessions, windows):
            used = budget.spent_usd + budget.reserved_usd
            utilisation = utilisation_of(used, budget.limit_usd)
            states.append(
                BudgetState(
                    scope=budget.scope,
                    period=budget.period.value,
                    window_start=budget.window.start,
                    window_end=budget.window.end,
                    window_label=budget.window.label(),
                    spent_usd=budget.spent_usd,
                    reserved_usd=budget.reserved_usd,
                    limit_usd=budget.limit_usd,
                    utilisation=utilisation,
                    action=self.ladder.action_for(utilisation).value,
                )
            )
        return states

    def max_utilisation(self, *, now: datetime | None = None) -> Decimal:
        """The highest utilisation of any budget (0 when none is configured)."""
        return max((state.utilisation for state in self.snapshot(now=now)), default=Decimal(0))

    def check_alerts(self, *, now: datetime | None = None) -> list[BudgetAlert]:
        """Alert on every budget past a threshold not yet alerted (for a periodic beat task)."""
        return self.alerts.check(self.snapshot(now=now))
