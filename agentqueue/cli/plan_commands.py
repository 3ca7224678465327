"""`agentqueue plan --forecast forecast.json`: workers per pool per hour and their cost."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click
from rich.console import RenderableType

from agentqueue.money import format_usd
from agentqueue.scheduler.capacity_plan import CapacityPlan, load_forecast, plan_capacity
from agentqueue.scheduler.pools import load_pools
from agentqueue.settings import get_settings
from agentqueue.terminal import emit, new_table, wide_option


def _share(_: click.Context, __: click.Parameter, value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        share = Decimal(value)
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not a number between 0 and 1") from None
    if not share.is_finite() or not Decimal(0) <= share <= Decimal(1):
        raise click.BadParameter(f"{value!r} is not a number between 0 and 1")
    return share


def _current(_: click.Context, __: click.Parameter, values: tuple[str, ...]) -> dict[str, int]:
    counts = {}
    for value in values:
        pool, _sep, count = value.partition("=")
        if not pool or not count.isdigit():
            raise click.BadParameter(f"{value!r} is not POOL=N, e.g. batch=3")
        counts[pool] = int(count)
    return counts


@click.command("plan")
@click.option(
    "--forecast",
    "forecast_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON forecast of requests/s per pool per hour (format: README, 'Capacity plan').",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@wide_option
@click.option(
    "--spot-share",
    callback=_share,
    help="Share of needed workers bought as preemptible (spot) capacity, 0-1; overrides the file.",
)
@click.option(
    "--current",
    multiple=True,
    callback=_current,
    metavar="POOL=N",
    help="Workers running now in POOL; overrides the file's current_workers. Repeatable.",
)
def plan(
    forecast_path: Path,
    as_json: bool,
    wide: bool,
    spot_share: Decimal | None,
    current: dict[str, int],
) -> None:
    """Plan the workers each pool needs over the forecast hours, and the hourly cost impact."""
    result = plan_capacity(
        load_forecast(forecast_path),
        load_pools(get_settings()),
        spot_share=spot_share,
        current_workers=current,
    )
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        _print_plan(result, wide=wide)


def _print_plan(result: CapacityPlan, *, wide: bool) -> None:
    lines: list[RenderableType] = [
        f"worker {format_usd(result.worker_hourly_cost_usd)}/hour, spot share "
        f"{result.spot_share}, spot discount {result.spot_discount}"
    ]
    right = ("spot", "$/hour", "change $/hour")
    table = new_table(
        "hour (UTC)",
        "pool",
        "req/s",
        "in flight",
        "workers",
        "now",
        "change",
        *right,
        numeric=right,
    )
    for row in result.rows:
        workers = f"{row.workers}{' (max)' if row.demand_exceeds_max else ''}"
        table.add_row(
            row.hour.strftime("%Y-%m-%d %H:%M"),
            row.pool,
            str(row.requests_per_s),
            str(row.in_flight),
            workers,
            str(row.current_workers),
            f"{row.change:+d}",
            str(row.spot_workers),
            format_usd(row.hourly_cost_usd),
            _signed(row.cost_change_usd),
        )
    lines.append(table)
    totals = result.hourly_totals()
    peak_hour, peak_workers, peak_cost, peak_change = max(totals, key=lambda total: total[2])
    total_cost = sum((cost for _, _, cost, _ in totals), Decimal(0))
    total_change = sum((change for _, _, _, change in totals), Decimal(0))
    lines.append(
        f"peak {peak_hour.strftime('%Y-%m-%d %H:%MZ')}: {peak_workers} workers, "
        f"{format_usd(peak_cost)}/hour ({_signed(peak_change)} vs now)"
    )
    lines.append(
        f"over {len(totals)} hours: {format_usd(total_cost)} ({_signed(total_change)} vs now)"
    )
    if any(row.demand_exceeds_max for row in result.rows):
        lines.append("(max): demand needs more workers than worker_limits allows")
    emit(*lines, wide=wide)


def _signed(amount: Decimal) -> str:
    text = format_usd(amount)
    return text if text.startswith("-") else f"+{text}"
