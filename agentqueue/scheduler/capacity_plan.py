"""Capacity plan: from a request forecast, the workers each pool needs per hour and what they cost.

Little's law gives the jobs in flight, `L = requests per second x average job seconds`; a
worker of a pool runs up to `slots_per_worker` jobs at once (default: the pool's max
concurrency, and never outside its min/max), so it needs `ceil(L / slots_per_worker)`
workers, at least enough for the pool's min concurrency and at most `worker_limits.max`.

The forecast file is JSON; README.md ("Capacity plan") shows a complete, valid example and what
each field means (a test parses that example).

Spot workers are `floor(workers x spot_share)`, the rest on-demand (rounding towards the
capacity that cannot be taken away). Safe because jobs are idempotent and acked late.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NoReturn

from agentqueue.errors import AgentQueueError
from agentqueue.scheduler.pools import PoolSpec

_MONEY_STEP = Decimal("0.0001")


class InvalidForecast(AgentQueueError):
    """The forecast file cannot be planned from; the message names the bad entry."""

    code = "invalid_forecast"


@dataclass(frozen=True)
class HourForecast:
    hour: datetime
    requests_per_s: Mapping[str, Decimal]


@dataclass(frozen=True)
class WorkerLimits:
    min_workers: int | None = None
    max_workers: int | None = None


@dataclass(frozen=True)
class Forecast:
    """A parsed forecast file; see the module docstring for its format."""

    hours: tuple[HourForecast, ...]
    avg_job_seconds: Mapping[str, Decimal]
    worker_hourly_cost_usd: Decimal
    spot_discount: Decimal = Decimal(0)
    spot_share: Decimal = Decimal(0)
    current_workers: Mapping[str, int] = field(default_factory=dict)
    current_spot_share: Decimal = Decimal(0)
    slots_per_worker: Mapping[str, int] = field(default_factory=dict)
    worker_limits: Mapping[str, WorkerLimits] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolHourPlan:
    """What one pool needs in one hour, against what runs now."""

    hour: datetime
    pool: str
    requests_per_s: Decimal
    in_flight: Decimal
    slots_per_worker: int
    workers: int
    demand_exceeds_max: bool
    current_workers: int
    change: int
    on_demand_workers: int
    spot_workers: int
    hourly_cost_usd: Decimal
    current_hourly_cost_usd: Decimal

    @property
    def cost_change_usd(self) -> Decimal:
        return self.hourly_cost_usd - self.current_hourly_cost_usd


@dataclass(frozen=True)
class CapacityPlan:
    rows: tuple[PoolHourPlan, ...]
    spot_share: Decimal
    spot_discount: Decimal
    worker_hourly_cost_usd: Decimal

    def hourly_totals(self) -> list[tuple[datetime, int, Decimal, Decimal]]:
        """Per hour: workers, cost and cost change over all pools."""
        totals: dict[datetime, tuple[int, Decimal, Decimal]] = {}
        for row in self.rows:
            workers, cost, change = totals.get(row.hour, (0, Decimal(0), Decimal(0)))
            totals[row.hour] = (
                workers + row.workers,
                cost + row.hourly_cost_usd,
                change + row.cost_change_usd,
            )
        return [(hour, *values) for hour, values in sorted(totals.items())]

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly; money as strings so no float ever touches it."""
        totals = self.hourly_totals()
        return {
            "spot_share": str(self.spot_share),
            "spot_discount": str(self.spot_discount),
            "worker_hourly_cost_usd": str(self.worker_hourly_cost_usd),
            "rows": [
                {
                    "hour": _iso(row.hour),
                    "pool": row.pool,
                    "requests_per_s": str(row.requests_per_s),
                    "in_flight": str(row.in_flight),
                    "slots_per_worker": row.slots_per_worker,
                    "workers": row.workers,
                    "demand_exceeds_max": row.demand_exceeds_max,
                    "current_workers": row.current_workers,
                    "change": row.change,
                    "on_demand_workers": row.on_demand_workers,
                    "spot_workers": row.spot_workers,
                    "hourly_cost_usd": money(row.hourly_cost_usd),
                    "cost_change_usd": money(row.cost_change_usd),
                }
                for row in self.rows
            ],
            "hours": [
                {
                    "hour": _iso(hour),
                    "workers": workers,
                    "hourly_cost_usd": money(cost),
                    "cost_change_usd": money(change),
                }
                for hour, workers, cost, change in totals
            ],
            "total_cost_usd": money(sum((cost for _, _, cost, _ in totals), Decimal(0))),
            "total_cost_change_usd": money(sum((change for _, _, _, change in totals), Decimal(0))),
        }


def plan_capacity(
    forecast: Forecast,
    pools: Iterable[PoolSpec],
    *,
    spot_share: Decimal | None = None,
    current_workers: Mapping[str, int] | None = None,
) -> CapacityPlan:
    """Plan every forecast hour for every pool; options override the file's values.

    Raises `InvalidForecast` for pools the forecast names but settings do not define, or
    a per-worker slot count outside the pool's min/max.
    """
    pools_by_name = {pool.name: pool for pool in pools}
    share = forecast.spot_share if spot_share is None else spot_share
    _check_share("spot share", share)
    current = {**forecast.current_workers, **(current_workers or {})}
    named = {name for hour in forecast.hours for name in hour.requests_per_s} | set(current)
    unknown = sorted(named - set(pools_by_name))
    if unknown:
        _refuse(f"pools {unknown} are not defined; defined: {sorted(pools_by_name)}")
    rows = []
    for hour in forecast.hours:
        for pool in pools_by_name.values():
            rows.append(_plan_pool_hour(forecast, pool, hour, share, current.get(pool.name, 0)))
    return CapacityPlan(tuple(rows), share, forecast.spot_discount, forecast.worker_hourly_cost_usd)


def _plan_pool_hour(
    forecast: Forecast, pool: PoolSpec, hour: HourForecast, share: Decimal, current: int
) -> PoolHourPlan:
    rps = hour.requests_per_s.get(pool.name, Decimal(0))
    seconds = forecast.avg_job_seconds.get(pool.name)
    if seconds is None:
        if rps > 0:
            _refuse(f"avg_job_seconds has no entry for pool {pool.name!r}")
        seconds = Decimal(0)
    in_flight = rps * seconds
    slots = forecast.slots_per_worker.get(pool.name, pool.max_concurrency)
    if not pool.min_concurrency <= slots <= pool.max_concurrency or slots < 1:
        _refuse(
            f"slots_per_worker for {pool.name!r} is {slots}, outside the pool's "
            f"{pool.min_concurrency}-{pool.max_concurrency}"
        )
    limits = forecast.worker_limits.get(pool.name, WorkerLimits())
    fewest = limits.min_workers
    if fewest is None:
        fewest = math.ceil(pool.min_concurrency / slots)
    needed = max(math.ceil(in_flight / slots), fewest)
    most = limits.max_workers
    workers = needed if most is None else min(needed, most)
    spot = _spot_workers(workers, share)
    current_spot = _spot_workers(current, forecast.current_spot_share)
    return PoolHourPlan(
        hour=hour.hour,
        pool=pool.name,
        requests_per_s=rps,
        in_flight=in_flight,
        slots_per_worker=slots,
        workers=workers,
        demand_exceeds_max=workers < needed,
        current_workers=current,
        change=workers - current,
        on_demand_workers=workers - spot,
        spot_workers=spot,
        hourly_cost_usd=_fleet_cost(forecast, workers - spot, spot),
        current_hourly_cost_usd=_fleet_cost(forecast, current - current_spot, current_spot),
    )


def _spot_workers(workers: int, share: Decimal) -> int:
    return int((Decimal(workers) * share).to_integral_value(rounding=ROUND_FLOOR))


def _fleet_cost(forecast: Forecast, on_demand: int, spot: int) -> Decimal:
    price = forecast.worker_hourly_cost_usd
    return on_demand * price + spot * price * (1 - forecast.spot_discount)


def money(amount: Decimal) -> str:
    """Dollars to four decimal places, for output only."""
    return str(amount.quantize(_MONEY_STEP, rounding=ROUND_HALF_UP))


def load_forecast(path: Path) -> Forecast:
    """Read and parse a forecast file; raises `InvalidForecast` naming what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        _refuse(f"cannot read {path}: {exc.strerror}")
    return parse_forecast(text)


def parse_forecast(text: str) -> Forecast:
    """Parse forecast JSON (format in the module docstring)."""
    try:
        raw = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        _refuse(f"it is not JSON ({exc.msg} at line {exc.lineno})")
    if not isinstance(raw, dict):
        _refuse("it must be a JSON object")
    hours = raw.get("hours")
    if not isinstance(hours, list) or not hours:
        _refuse('"hours" must be a non-empty list')
    spot_share = _decimal("spot_share", raw.get("spot_share", 0))
    current_spot_share = _decimal("current_spot_share", raw.get("current_spot_share", 0))
    spot_discount = _decimal("spot_discount", raw.get("spot_discount", 0))
    for name, share in (
        ("spot_share", spot_share),
        ("current_spot_share", current_spot_share),
        ("spot_discount", spot_discount),
    ):
        _check_share(name, share)
    if "worker_hourly_cost_usd" not in raw:
        _refuse('"worker_hourly_cost_usd" is required (the price of one worker for one hour)')
    return Forecast(
        hours=tuple(_hour(index, entry) for index, entry in enumerate(hours)),
        avg_job_seconds=_mapping("avg_job_seconds", raw.get("avg_job_seconds", {}), _decimal),
        worker_hourly_cost_usd=_decimal("worker_hourly_cost_usd", raw["worker_hourly_cost_usd"]),
        spot_discount=spot_discount,
        spot_share=spot_share,
        current_workers=_mapping("current_workers", raw.get("current_workers", {}), _count),
        current_spot_share=current_spot_share,
        slots_per_worker=_mapping("slots_per_worker", raw.get("slots_per_worker", {}), _count),
        worker_limits=_mapping("worker_limits", raw.get("worker_limits", {}), _limits),
    )


def _hour(index: int, entry: Any) -> HourForecast:
    where = f"hours[{index}]"
    if not isinstance(entry, dict) or "hour" not in entry:
        _refuse(f'{where} must be an object with "hour" and "pools"')
    try:
        hour = datetime.fromisoformat(str(entry["hour"]))
    except ValueError:
        _refuse(f"{where}.hour {entry['hour']!r} is not an ISO 8601 time")
    if hour.utcoffset() is None:
        _refuse(f"{where}.hour {entry['hour']!r} needs a time zone, e.g. 2026-11-28T00:00Z")
    return HourForecast(
        hour.astimezone(UTC), _mapping(f"{where}.pools", entry.get("pools", {}), _decimal)
    )


def _mapping(where: str, raw: Any, convert: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        _refuse(f"{where} must be an object keyed by pool name")
    return {str(key): convert(f"{where}.{key}", value) for key, value in raw.items()}


def _decimal(where: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        _refuse(f"{where} must be a number")
    try:
        number = Decimal(value)
    except InvalidOperation:
        _refuse(f"{where} {value!r} is not a number")
    if not number.is_finite() or number < 0:
        _refuse(f"{where} must be a finite number >= 0")
    return number


def _count(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        _refuse(f"{where} must be a whole number >= 0")
    return value


def _limits(where: str, value: Any) -> WorkerLimits:
    if not isinstance(value, dict) or set(value) - {"min", "max"}:
        _refuse(f'{where} must be an object with "min" and/or "max"')
    fewest = _count(f"{where}.min", value["min"]) if "min" in value else None
    most = _count(f"{where}.max", value["max"]) if "max" in value else None
    if fewest is not None and most is not None and fewest > most:
        _refuse(f"{where} has min {fewest} above max {most}")
    return WorkerLimits(fewest, most)


def _check_share(name: str, share: Decimal) -> None:
    if not Decimal(0) <= share <= Decimal(1):
        _refuse(f"{name} must be between 0 and 1, got {share}")


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _refuse(problem: str) -> NoReturn:
    raise InvalidForecast(f"The forecast is invalid: {problem}.")
