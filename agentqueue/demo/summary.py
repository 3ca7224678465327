"""What the demo did, in figures read back from its own jobs' results and ledger entries."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from rich.console import RenderableType
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from agentqueue.jobs import JobResult
from agentqueue.money import format_usd
from agentqueue.persistence.ledger_reports import ledger_totals
from agentqueue.terminal import new_table

_CHUNK = 500  # ids per IN (...) query, well under every database's parameter limit


@dataclass(frozen=True)
class Batching:
    """How the jobs travelled: packed batch tasks of one (agent type, model, priority)."""

    jobs: int
    tasks: int
    largest: int


@dataclass(frozen=True)
class OffPeak:
    """The off-peak story of this run: deferred jobs, or the truth that none could be."""

    inside_window: bool
    windows: str
    low_jobs: int
    deferred: int


@dataclass(frozen=True)
class LedgerFigures:
    spent_usd: Decimal
    avoided_usd: Decimal  # cache hits: what the provider call would have cost
    tier_saved_usd: Decimal  # cheaper (flex) tier against the standard price


def read_ledger(sessions: sessionmaker[Session], job_ids: Iterable[str]) -> LedgerFigures:
    """Sums over these jobs' ledger entries and their charges apart only (the database may
    hold earlier runs)."""
    ids = sorted(set(job_ids))
    spent = avoided = saved = Decimal(0)
    with sessions() as session:
        for start in range(0, len(ids), _CHUNK):
            _entries, cost, avoided_usd, saved_usd = ledger_totals(
                session, ids[start : start + _CHUNK]
            )
            spent += Decimal(str(cost))
            avoided += Decimal(str(avoided_usd))
            saved += Decimal(str(saved_usd))
    return LedgerFigures(spent, avoided, saved)


def groups_table(results: Sequence[JobResult]) -> Table:
    groups: dict[tuple[str, str], list[JobResult]] = defaultdict(list)
    for result in results:
        groups[(result.agent_type or "?", result.model or "?")].append(result)
    numbers = ("jobs", "ok", "tokens in/out", "cached", "cost")
    table = new_table("agent type", "model", *numbers, title="agentqueue demo", numeric=numbers)
    for (agent_type, model), group in sorted(groups.items()):
        table.add_row(
            agent_type,
            model,
            str(len(group)),
            str(sum(r.status.value == "succeeded" for r in group)),
            f"{sum(r.usage.input_tokens for r in group):,}/"
            f"{sum(r.usage.output_tokens for r in group):,}",
            str(sum(r.cache_tier is not None for r in group)),
            format_usd(sum((r.cost for r in group), Decimal(0))),
        )
    return table


def _tier_name(tier: str) -> str:
    # single_flight: an identical request was in flight; its one provider call answered both.
    return tier.upper() if tier in ("l1", "l2", "l3") else tier.replace("_", "-")


def summary_lines(
    results: Sequence[JobResult],
    elapsed: float,
    *,
    batching: Batching,
    offpeak: OffPeak,
    ledger: LedgerFigures,
) -> list[str]:
    """The demo's closing lines: batching, cache, off-peak and savings, each stated plainly."""
    rate = len(results) / elapsed if elapsed else 0.0
    succeeded = sum(r.status.value == "succeeded" for r in results)
    hits = Counter(r.cache_tier for r in results if r.cache_tier is not None)
    by_tier = ", ".join(f"{_tier_name(tier)} {count}" for tier, count in sorted(hits.items()))
    flex = sum(r.service_tier == "flex" for r in results)
    lines = [
        f"{len(results)} jobs in {elapsed:.2f} s ({rate:.0f} jobs/s), {succeeded} succeeded; "
        f"spent {format_usd(ledger.spent_usd)}",
        f"batching: {batching.jobs} jobs travelled in {batching.tasks} packed batch tasks "
        f"(one per agent type, model and priority; the largest carried {batching.largest}), "
        f"not {batching.jobs} messages",
        f"cache: {sum(hits.values())} jobs answered from the cache"
        + (f" ({by_tier})" if by_tier else "")
        + f", avoiding {format_usd(ledger.avoided_usd)} of provider calls",
    ]
    if offpeak.inside_window:
        lines.append(
            f"deferral: it is inside the off-peak window now ({offpeak.windows}), so the "
            f"{offpeak.low_jobs} low-priority jobs ran at once and none was deferred; outside "
            "the window they wait for it and run on the cheaper flex tier where their model "
            "has one"
        )
    else:
        lines.append(
            f"deferral: {offpeak.deferred} low-priority jobs were deferred to the off-peak "
            f"window ({offpeak.windows}); {flex} of them ran on the flex tier, saving "
            f"{format_usd(ledger.tier_saved_usd)} against the standard price"
            + ("" if flex == offpeak.deferred else " (the others' models have no flex price)")
        )
    saved = ledger.avoided_usd + ledger.tier_saved_usd
    lines.append(
        f"saved: {format_usd(saved)} in all (cache {format_usd(ledger.avoided_usd)}, "
        f"cheaper tier {format_usd(ledger.tier_saved_usd)}); without them this run would "
        f"have cost {format_usd(ledger.spent_usd + saved)}"
    )
    return lines


def summary(
    results: Sequence[JobResult],
    elapsed: float,
    *,
    batching: Batching,
    offpeak: OffPeak,
    ledger: LedgerFigures,
) -> list[RenderableType]:
    lines = summary_lines(results, elapsed, batching=batching, offpeak=offpeak, ledger=ledger)
    return [groups_table(results), *lines]
