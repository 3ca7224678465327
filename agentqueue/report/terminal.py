"""The report as rich tables: the same numbers the HTML charts draw."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from agentqueue.money import format_usd
from agentqueue.report.charts import lever_label
from agentqueue.report.data import CACHE_TIERS, DIMENSIONS, PERCENTILES, ZERO, SpendReport
from agentqueue.report.format import seconds, share

TITLES = {"model": "model", "agent_type": "agent type", "tenant": "tenant"}


def print_report(report: SpendReport, console: Console) -> None:
    console.print(
        f"[bold]agentqueue spend report[/bold] {report.days[0]} to {report.days[-1]} "
        f"({report.timezone}): spent {format_usd(report.total_spent)}, "
        f"saved {format_usd(report.total_saved)}"
    )
    for dimension in DIMENSIONS:
        console.print(_spend_table(report, dimension))
    savings = Table("lever", "saved", title="money saved by lever")
    for lever, amount in sorted(report.savings.items(), key=lambda kv: -kv[1]):
        savings.add_row(lever_label(lever), format_usd(amount))
    console.print(savings)
    console.print(_cache_table(report))
    console.print(_budget_table(report))
    latency = Table("priority", "jobs", *(f"p{p}" for p in PERCENTILES), title="job latency")
    for priority, values in report.latency.items():
        latency.add_row(
            priority,
            str(report.latency_jobs[priority]),
            *(seconds(values[p]) for p in PERCENTILES),
        )
    console.print(latency)
    peak = max((n for _, n in report.backlog), default=0)
    shares = Table("day", "flex/batch jobs", "jobs", "share", title="flex and batch tier share")
    for day in report.days:
        discounted, total = report.batch_share.get(day, (0, 0))
        if total:
            shares.add_row(day, str(discounted), str(total), share(discounted / total))
    console.print(shares)
    console.print(f"deferred backlog: {report.deferred_now} now, peak {peak} in this period")


def _spend_table(report: SpendReport, dimension: str) -> Table:
    """Long form (a row per day and key) so ids and names are never cut to fit columns."""
    table = Table("day", TITLES[dimension], "spent", title=f"spend by {TITLES[dimension]}")
    series = report.spend_series(dimension)
    for index, day in enumerate(report.days):
        spent = sorted(((vs[index], key) for key, vs in series.items() if vs[index]), reverse=True)
        for amount, key in spent:
            table.add_row(day, key, format_usd(amount))
    totals = {key: sum(values, ZERO) for key, values in series.items()}
    for key, amount in sorted(totals.items(), key=lambda kv: -kv[1]):
        table.add_row("total", key, format_usd(amount), style="bold")
    return table


def _cache_table(report: SpendReport) -> Table:
    table = Table("day", "answered", *CACHE_TIERS, title="cache hit ratio per tier")
    for day in report.days:
        if report.answered_by_day.get(day):
            table.add_row(
                day,
                str(report.answered_by_day[day]),
                *(share(report.hit_ratio(tier, day)) for tier in CACHE_TIERS),
            )
    return table


def _budget_table(report: SpendReport) -> Table:
    table = Table(
        "scope",
        "period",
        "spent",
        "reserved",
        "limit",
        "used",
        "thresholds passed",
        title="budgets (current window)",
    )
    for budget in report.budgets:
        passed = [label for label, f in budget.thresholds if budget.utilisation >= f]
        table.add_row(
            budget.scope,
            budget.period,
            format_usd(budget.spent_usd),
            format_usd(budget.reserved_usd),
            format_usd(budget.limit_usd),
            share(float(budget.utilisation)),
            ", ".join(passed) or "none",
        )
    return table
