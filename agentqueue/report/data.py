"""Read the ledger and the jobs table once and sum them into what the report shows."""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from agentqueue.budget.budget_limits import read_budgets
from agentqueue.budget.gate import BudgetGate
from agentqueue.budget.periods import current_windows
from agentqueue.budget.policy import BudgetLadder
from agentqueue.budget.savings import (
    CACHE_LEVER_PREFIX,
    LEVER_PRUNING,
    LEVER_RIGHT_SIZING,
    pruning_saving,
    right_sizing_saving,
)
from agentqueue.errors import AgentQueueError
from agentqueue.jobs import AgentJob
from agentqueue.persistence import report_queries
from agentqueue.persistence.report_queries import EntryRow, JobRow
from agentqueue.settings import Settings

ZERO = Decimal(0)
DIMENSIONS = ("model", "agent_type", "tenant")
PERCENTILES = (50, 90, 99)
CACHE_TIERS = ("l1", "l2", "l3", "single_flight")
_SINCE = re.compile(r"^(\d+)([hdw])$")


class InvalidSince(AgentQueueError):
    code = "invalid_since"


def parse_since(text: str) -> timedelta:
    """`7d`, `24h` or `2w` as a duration.

    Raises:
        InvalidSince: anything else.
    """
    match = _SINCE.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise InvalidSince(f"--since takes a number and h, d or w (like 7d or 24h), not {text!r}")
    amount, unit = int(match.group(1)), match.group(2)
    return {"h": timedelta(hours=amount), "d": timedelta(days=amount)}.get(
        unit, timedelta(weeks=amount)
    )


@dataclass(frozen=True, slots=True)
class BudgetBurn:
    """One budget's current window: the spend climbing towards its limit, and the ladder."""

    scope: str
    period: str
    window_start: datetime
    window_end: datetime
    limit_usd: Decimal
    spent_usd: Decimal
    reserved_usd: Decimal
    points: list[tuple[datetime, Decimal]]  # cumulative settled spend, oldest first
    thresholds: list[tuple[str, Decimal]]  # ladder action, fraction of the limit

    @property
    def utilisation(self) -> Decimal:
        if self.limit_usd <= 0:
            return Decimal(1)
        return (self.spent_usd + self.reserved_usd) / self.limit_usd


@dataclass
class SpendReport:
    """Everything the report shows, in Decimal dollars, seconds and counts."""

    since: datetime
    until: datetime
    timezone: str
    days: list[str] = field(default_factory=list)
    spend: dict[str, dict[str, dict[str, Decimal]]] = field(default_factory=dict)
    total_spent: Decimal = ZERO
    savings: dict[str, Decimal] = field(default_factory=dict)
    answered_by_day: dict[str, int] = field(default_factory=dict)
    cache_hits: dict[str, dict[str, int]] = field(default_factory=dict)
    budgets: list[BudgetBurn] = field(default_factory=list)
    latency: dict[str, dict[int, float]] = field(default_factory=dict)
    latency_jobs: dict[str, int] = field(default_factory=dict)
    backlog: list[tuple[datetime, int]] = field(default_factory=list)
    deferred_now: int = 0
    batch_share: dict[str, tuple[int, int]] = field(default_factory=dict)

    def spend_series(self, dimension: str) -> dict[str, list[Decimal]]:
        """Per key of `dimension`, its spend on each day of `days`."""
        by_key = self.spend.get(dimension, {})
        return {key: [days.get(day, ZERO) for day in self.days] for key, days in by_key.items()}

    def hit_ratio(self, tier: str, day: str) -> float:
        answered = self.answered_by_day.get(day, 0)
        return self.cache_hits.get(tier, {}).get(day, 0) / answered if answered else 0.0

    @property
    def total_saved(self) -> Decimal:
        return sum(self.savings.values(), ZERO)


def build_report(
    sessions: sessionmaker[Session],
    settings: Settings,
    *,
    since: timedelta,
    now: datetime | None = None,
) -> SpendReport:
    """Sum the ledger entries and jobs of the last `since` (in whole local days)."""
    until = now or datetime.now(UTC)
    zone = ZoneInfo(settings.timezone)
    first_day = (until - since).astimezone(zone).date()
    report = SpendReport(
        since=datetime.combine(first_day, datetime.min.time(), zone).astimezone(UTC),
        until=until,
        timezone=settings.timezone,
    )
    day = first_day
    while day <= until.astimezone(zone).date():
        report.days.append(day.isoformat())
        day += timedelta(days=1)
    gate = BudgetGate(sessions, settings)
    with sessions() as session:
        entries = list(report_queries.ledger_entries(session, since_day=report.days[0]))
        jobs = {row.job_id: row for row in report_queries.jobs_since(session, report.since)}
        right_sized = [e.job_id for e in entries if e.budget_action == "right_size"]
        payloads = report_queries.job_payloads(session, right_sized)
    results = {job_id: _result_of(row) for job_id, row in jobs.items()}
    _add_money(report, entries, results, gate, payloads, until)
    _add_budgets(report, sessions, settings, entries, until)
    _add_jobs(report, list(jobs.values()), until)
    return report


def _result_of(row: JobRow) -> dict[str, object]:
    if not row.result:
        return {}
    try:
        parsed = json.loads(row.result)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _add_money(
    report: SpendReport,
    entries: list[EntryRow],
    results: dict[str, dict[str, object]],
    gate: BudgetGate,
    payloads: dict[str, str],
    now: datetime,
) -> None:
    spend: dict[str, dict[str, dict[str, Decimal]]] = {
        d: defaultdict(lambda: defaultdict(lambda: ZERO)) for d in DIMENSIONS
    }
    savings: dict[str, Decimal] = defaultdict(lambda: ZERO)
    hits: dict[str, Counter[str]] = defaultdict(Counter)
    answered: Counter[str] = Counter()
    shares: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for entry in entries:
        for dimension in DIMENSIONS:
            spend[dimension][getattr(entry, dimension)][entry.day] += entry.cost_usd
        report.total_spent += entry.cost_usd
        result = results.get(entry.job_id, {})
        if entry.state == "cache_hit":
            tier = str(result.get("cache_tier") or "unknown")
            savings[f"{CACHE_LEVER_PREFIX}{tier}"] += entry.avoided_usd
            hits[tier][entry.day] += 1
            answered[entry.day] += 1
        elif entry.state == "settled":
            answered[entry.day] += 1
            shares[entry.day][1] += 1
            # A tier the model has no price for was charged the standard price: no discount.
            if entry.service_tier != "standard" and entry.cost_usd < entry.standard_cost_usd:
                shares[entry.day][0] += 1
                savings[entry.service_tier] += entry.standard_cost_usd - entry.cost_usd
        pruned = int(str(result.get("context_tokens_saved") or 0))
        if pruned:
            savings[LEVER_PRUNING] += pruning_saving(
                gate.prices, entry.model, entry.service_tier, pruned, at=entry.reserved_at
            )
        payload = payloads.get(entry.job_id)
        if payload is not None and entry.state == "settled":
            savings[LEVER_RIGHT_SIZING] += right_sizing_saving(
                gate.planner,
                AgentJob.model_validate_json(payload),
                entry.service_tier,
                at=entry.reserved_at,
                input_tokens=entry.input_tokens,
                output_tokens=entry.output_tokens,
                cost=entry.cost_usd,
            )
    report.spend = {d: {k: dict(v) for k, v in by_key.items()} for d, by_key in spend.items()}
    report.savings = {lever: amount for lever, amount in savings.items() if amount > 0}
    report.cache_hits = {tier: dict(days) for tier, days in hits.items()}
    report.answered_by_day = dict(answered)
    report.batch_share = {day: (share[0], share[1]) for day, share in shares.items()}


def _add_budgets(
    report: SpendReport,
    sessions: sessionmaker[Session],
    settings: Settings,
    entries: list[EntryRow],
    now: datetime,
) -> None:
    ladder = BudgetLadder.from_settings(settings)
    thresholds = [
        ("alert", ladder.alert_at),
        ("right-size", ladder.right_size_at),
        ("defer", ladder.defer_at),
        ("high only", ladder.high_priority_only_at),
        ("refuse", ladder.refuse_at),
    ]
    for budget in read_budgets(sessions, current_windows(now, settings.timezone)):
        start, end = budget.window.start, budget.window.end
        matching = sorted(
            (e.settled_at, e.cost_usd)
            for e in entries
            if e.settled_at is not None
            and e.cost_usd
            and _in_scope(budget.scope, e)
            and start <= _aware(e.settled_at) < end
        )
        points: list[tuple[datetime, Decimal]] = [(start, ZERO)]
        running = ZERO
        for moment, cost in matching:
            running += cost
            points.append((_aware(moment), running))
        report.budgets.append(
            BudgetBurn(
                budget.scope,
                budget.period.value,
                start,
                end,
                budget.limit_usd,
                budget.spent_usd,
                budget.reserved_usd,
                points,
                thresholds,
            )
        )


def _in_scope(scope: str, entry: EntryRow) -> bool:
    kind, _, name = scope.partition(":")
    if kind == "global":
        return True
    if kind == "tenant":
        return entry.tenant == name
    return kind == "agent_type" and entry.agent_type == name


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _add_jobs(report: SpendReport, jobs: list[JobRow], now: datetime) -> None:
    durations: dict[str, list[float]] = defaultdict(list)
    deferred: list[tuple[datetime, datetime]] = []
    for job in jobs:
        if job.status == "deferred":
            report.deferred_now += 1
        if job.finished_at is not None:
            seconds = (_aware(job.finished_at) - _aware(job.submitted_at)).total_seconds()
            durations[job.priority].append(max(0.0, seconds))
        if job.release_after is not None:
            left = job.started_at if job.status != "deferred" and job.started_at else now
            deferred.append((_aware(job.submitted_at), _aware(left)))
    for priority, values in durations.items():
        values.sort()
        report.latency[priority] = {p: _percentile(values, p) for p in PERCENTILES}
        report.latency_jobs[priority] = len(values)
    report.backlog = _backlog(deferred, report.since, now)


def _percentile(sorted_values: list[float], percent: int) -> float:
    """Nearest-rank percentile."""
    rank = max(1, -(-len(sorted_values) * percent // 100))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _backlog(
    intervals: list[tuple[datetime, datetime]], since: datetime, now: datetime, steps: int = 96
) -> list[tuple[datetime, int]]:
    """How many jobs waited deferred at each of `steps` moments from the first deferral on."""
    if not intervals:
        return []
    begins = sorted(begin for begin, _ in intervals)
    ends = sorted(end for _, end in intervals)
    start = max(since, begins[0])
    step = max((now - start) / steps, timedelta(seconds=1))
    moments = [start + step * i for i in range(steps) if start + step * i < now] + [now]
    return [(m, bisect_right(begins, m) - bisect_right(ends, m)) for m in moments]
