"""The report's charts: one function per chart, from a `SpendReport` to an SVG string."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from agentqueue.money import format_usd
from agentqueue.report import svg
from agentqueue.report.data import CACHE_TIERS, PERCENTILES, BudgetBurn, SpendReport
from agentqueue.report.format import seconds, share

MAX_SERIES = 8


def _money(value: float) -> str:
    # An axis tick or a bar's value for display; the money itself stays Decimal.
    return format_usd(Decimal(repr(float(value))))


def _top(series: dict[str, list[float]]) -> dict[str, list[float]]:
    """The largest series by total, the rest summed as `other`, so legends stay readable."""
    ranked = sorted(series.items(), key=lambda kv: -sum(kv[1]))
    if len(ranked) <= MAX_SERIES:
        return dict(ranked)
    kept = dict(ranked[: MAX_SERIES - 1])
    rest = [v for _, values in ranked[MAX_SERIES - 1 :] for v in values]
    width = len(ranked[0][1])
    kept["other"] = [sum(rest[i::width]) for i in range(width)]
    return kept


def spend_by(report: SpendReport, dimension: str) -> str:
    series = {k: [float(v) for v in vs] for k, vs in report.spend_series(dimension).items()}
    if not any(v > 0 for values in series.values() for v in values):
        return svg.empty(f"spend-{dimension}", "nothing was spent in this period")
    return svg.stacked_bars(f"spend-{dimension}", _short_days(report), _top(series), _money)


def savings(report: SpendReport) -> str:
    items = sorted(((k, float(v)) for k, v in report.savings.items()), key=lambda kv: -kv[1])
    if not items:
        return svg.empty("savings", "no lever saved anything in this period")
    return svg.horizontal_bars("savings", [(lever_label(k), v) for k, v in items], _money)


def lever_label(name: str) -> str:
    return {
        "flex": "flex tier",
        "batch": "batch tier",
        "right_sizing": "right-sizing",
        "pruning": "context pruning",
    }.get(name, name.replace("cache_", "cache ").replace("single_flight", "single-flight"))


def cache_ratio(report: SpendReport) -> str:
    tiers = [t for t in CACHE_TIERS if report.cache_hits.get(t)]
    if not tiers:
        return svg.empty("cache-ratio", "no job was answered from cache in this period")
    days = [d for d in report.days if report.answered_by_day.get(d)]
    series = {tier: [report.hit_ratio(tier, day) for day in days] for tier in tiers}
    return svg.grouped_bars("cache-ratio", [d[5:] for d in days], series, share, y_max=1.0)


def budget_burn(budget: BudgetBurn, index: int) -> str:
    moments = [t for t, _ in budget.points]
    start = budget.window_start.timestamp()
    xs = [t.timestamp() - start for t in moments]
    limit = float(budget.limit_usd)
    rules = [(f"{label} {float(f) * 100:.0f}%", limit * float(f)) for label, f in budget.thresholds]
    return svg.lines(
        f"budget-{index}",
        xs,
        [_clock(t) for t in moments],
        {"spent": [float(v) for _, v in budget.points]},
        _money,
        rules=rules,
    )


def _clock(moment: datetime) -> str:
    return moment.strftime("%m-%d %H:%M")


def latency(report: SpendReport) -> str:
    order = ["critical", "high", "normal", "low"]
    groups = [p for p in order if p in report.latency] + sorted(
        p for p in report.latency if p not in order
    )
    if not groups:
        return svg.empty("latency", "no job finished in this period")
    series = {f"p{p}": [report.latency[g][p] for g in groups] for p in PERCENTILES}
    return svg.grouped_bars("latency", groups, series, seconds)


def backlog(report: SpendReport) -> str:
    if not report.backlog:
        return svg.empty("backlog", "no job was deferred in this period")
    start = report.backlog[0][0].timestamp()
    xs = [t.timestamp() - start for t, _ in report.backlog]
    return svg.lines(
        "backlog",
        xs,
        [_clock(t) for t, _ in report.backlog],
        {"deferred jobs": [float(n) for _, n in report.backlog]},
        lambda v: f"{v:g}",
    )


def batch_share(report: SpendReport) -> str:
    days = [d for d in report.days if report.batch_share.get(d, (0, 0))[1]]
    if not any(report.batch_share[d][0] for d in days):
        return svg.empty("batch-share", "no job ran on a flex or batch tier in this period")
    shares = [report.batch_share[d][0] / report.batch_share[d][1] for d in days]
    return svg.grouped_bars(
        "batch-share", [d[5:] for d in days], {"flex/batch": shares}, share, y_max=1.0
    )


def _short_days(report: SpendReport) -> list[str]:
    return [day[5:] for day in report.days]


CHARTS: list[tuple[str, Callable[[SpendReport], str]]] = [
    ("Spend per day by model", lambda r: spend_by(r, "model")),
    ("Spend per day by agent type", lambda r: spend_by(r, "agent_type")),
    ("Spend per day by tenant", lambda r: spend_by(r, "tenant")),
    ("Money saved by lever", savings),
    ("Cache hit ratio per tier", cache_ratio),
    ("Job latency percentiles (submit to result)", latency),
    ("Deferred backlog", backlog),
    ("Share of jobs on a flex or batch tier", batch_share),
]
