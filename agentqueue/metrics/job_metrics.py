"""What a worker counts as its groups of jobs finish: jobs, money, cache hits, latencies.

The prometheus objects are created on first use, after `multiproc.prepare` chose where a worker
process keeps its values, so every process of one worker adds to the same files.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from agentqueue.budget.planning import JobPlanner
from agentqueue.budget.pricing import PriceBook
from agentqueue.budget.savings import (
    CACHE_LEVER_PREFIX,
    LEVER_PRUNING,
    LEVER_RIGHT_SIZING,
    pruning_saving,
    right_sizing_saving,
)
from agentqueue.jobs import AgentJob, JobResult
from agentqueue.metrics import names
from agentqueue.persistence.money_queries import read_job_money

log = logging.getLogger(__name__)

GROUP_SIZE_BUCKETS = (1, 2, 3, 5, 8, 13, 20, 50, 100, 200, 500, 1000)
# From an interactive job's seconds to a deferred job's night in the off-peak queue.
JOB_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400)
PROVIDER_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass(frozen=True, slots=True)
class FinishedJob:
    """A job whose final record this group wrote, with the job as the worker ran it."""

    job: AgentJob
    result: JobResult


class _Instruments:
    """The prometheus objects of one process (created once, after multiprocess set-up)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.jobs = Counter(
            names.JOBS,
            "Jobs by how their group step ended them (succeeded, failed, rejected, deferred).",
            ["outcome", "agent_type", "model", "priority"],
        )
        self.spend = Counter(
            names.SPEND_USD, "USD charged by the ledger.", ["model", "agent_type", "tenant"]
        )
        self.saved = Counter(
            names.SAVED_USD,
            "USD not spent, by lever: cache_<tier>, flex, batch, right_sizing, pruning.",
            ["lever", "model"],
        )
        self.cache_hits = Counter(names.CACHE_HITS, "Jobs answered from cache.", ["tier"])
        self.group_size = Histogram(
            names.GROUP_SIZE, "Jobs run together in one group step.", buckets=GROUP_SIZE_BUCKETS
        )
        self.job_latency = Histogram(
            names.JOB_LATENCY_S,
            "Seconds from submit to the final record.",
            ["priority"],
            buckets=JOB_LATENCY_BUCKETS,
        )
        self.provider_latency = Histogram(
            names.PROVIDER_LATENCY_S,
            "Seconds of one provider call, retries included.",
            ["model"],
            buckets=PROVIDER_LATENCY_BUCKETS,
        )
        self.provider_errors = Counter(
            names.PROVIDER_ERRORS, "Provider calls that failed, by error code.", ["model", "code"]
        )


_instruments: _Instruments | None = None


def _get() -> _Instruments:
    global _instruments
    if _instruments is None:
        _instruments = _Instruments()
    return _instruments


class JobMetrics:
    """The worker's hooks; each does nothing when metrics are off (`enabled=False`)."""

    def __init__(
        self,
        *,
        enabled: bool,
        sessions: sessionmaker[Session] | None = None,
        prices: PriceBook | None = None,
        planner: JobPlanner | None = None,
    ) -> None:
        self.enabled = enabled
        self._sessions = sessions
        self._prices = prices
        self._planner = planner
        if enabled:
            _get()

    def provider_call(self, model: str, seconds: float, error_code: str | None) -> None:
        if not self.enabled:
            return
        instruments = _get()
        instruments.provider_latency.labels(model).observe(seconds)
        if error_code is not None:
            instruments.provider_errors.labels(model, error_code).inc()

    def charged_apart(self, job: AgentJob, model: str, amount: Decimal) -> None:
        """Count money the ledger charged on a row apart from the job's entry (its calls of
        unknown outcome at `model`, charged as it moved to a fallback): in the spend series,
        which holds what the ledger charged, though no finished job carries it."""
        if not self.enabled or not amount:
            return
        try:
            _get().spend.labels(model, job.agent_type, job.tenant).inc(float(amount))
        except Exception:  # metrics must never fail a job
            log.exception("could not count a charge apart in the metrics")

    def group_finished(
        self, finished: Sequence[FinishedJob], deferred: Sequence[AgentJob], *, size: int
    ) -> None:
        """Count a group whose final records were just committed. Money is read back from
        the ledger, so the series hold what the ledger holds; a failed read costs only the
        money series of this group, never the jobs."""
        if not self.enabled:
            return
        try:
            self._count(finished, deferred, size)
        except Exception:  # metrics must never fail a job
            log.exception("could not count a finished group in the metrics")

    def _count(
        self, finished: Sequence[FinishedJob], deferred: Sequence[AgentJob], size: int
    ) -> None:
        # Summed per label set first: in multiprocess mode every increment is a locked write.
        jobs: Counter[tuple[str, str, str, str]] = Counter()
        spend: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
        saved: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        hits: Counter[str] = Counter()
        for job in deferred:
            jobs[("deferred", job.agent_type, job.model, job.priority.value)] += 1
        from_ledger = []
        now = datetime.now(UTC)
        for item in finished:
            result, job = item.result, item.job
            model = result.model or job.model
            jobs[(result.status.value, job.agent_type, model, job.priority.value)] += 1
            # The result carries the ledger's charge; avoided and standard prices live only
            # in the ledger, read back for the jobs that have them.
            cost = result.cost
            if cost:
                spend[(model, job.agent_type, job.tenant)] += cost
            if result.cache_tier:
                hits[result.cache_tier] += 1
            if result.cache_tier or (result.service_tier or "standard") != "standard":
                from_ledger.append(item)
            for lever, amount in self._estimated_savings(item, cost, now):
                saved[(lever, model)] += amount
        for lever_model, amount in self._ledger_savings(from_ledger).items():
            saved[lever_model] += amount
        instruments = _get()
        instruments.group_size.observe(size)
        for labels, count in jobs.items():
            instruments.jobs.labels(*labels).inc(count)
        for spend_labels, amount in spend.items():
            instruments.spend.labels(*spend_labels).inc(float(amount))
        for saved_labels, amount in saved.items():
            if amount > 0:
                instruments.saved.labels(*saved_labels).inc(float(amount))
        for tier, count in hits.items():
            instruments.cache_hits.labels(tier).inc(count)
        for item in finished:
            result = item.result
            if result.submitted_at and result.finished_at:
                seconds = (result.finished_at - result.submitted_at).total_seconds()
                instruments.job_latency.labels(item.job.priority.value).observe(max(0.0, seconds))

    def _ledger_savings(self, items: Sequence[FinishedJob]) -> dict[tuple[str, str], Decimal]:
        """What cache hits avoided and cheaper tiers saved, as the ledger recorded it."""
        saved: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        if not items or self._sessions is None:
            return saved
        try:
            with self._sessions() as session:
                money = read_job_money(session, [item.result.job_id for item in items])
        except SQLAlchemyError as error:
            log.warning("metrics could not read the ledger: %s", type(error).__name__)
            return saved
        for item in items:
            entry = money.get(item.result.job_id)
            if entry is None:
                continue
            if entry.state == "cache_hit":
                tier = item.result.cache_tier or "unknown"
                saved[(f"{CACHE_LEVER_PREFIX}{tier}", entry.model)] += entry.avoided_usd
            elif entry.state == "settled" and entry.cost_usd < entry.standard_cost_usd:
                discount = entry.standard_cost_usd - entry.cost_usd
                saved[(entry.service_tier, entry.model)] += discount
        return saved

    def _estimated_savings(
        self, item: FinishedJob, cost: Decimal, now: datetime
    ) -> list[tuple[str, Decimal]]:
        """Pruning and right-sizing, which the ledger does not record (rare: only jobs that
        were pruned or right-sized pay for this)."""
        result = item.result
        model = result.model or item.job.model
        tier = result.service_tier or "standard"
        levers: list[tuple[str, Decimal]] = []
        if self._prices is not None and result.context_tokens_saved:
            levers.append(
                (
                    LEVER_PRUNING,
                    pruning_saving(self._prices, model, tier, result.context_tokens_saved, at=now),
                )
            )
        if self._planner is not None and result.budget_action == "right_size":
            levers.append(
                (
                    LEVER_RIGHT_SIZING,
                    right_sizing_saving(
                        self._planner,
                        item.job,
                        tier,
                        at=now,
                        input_tokens=result.usage.input_tokens,
                        output_tokens=result.usage.output_tokens,
                        cost=cost,
                    ),
                )
            )
        return levers
