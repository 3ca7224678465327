"""Capacity plan: from a request forecast, the workers each pool needs per hour and what they cost.

Little's law gives the jobs in flight, `L = requests per second x average job seconds`; a
worker of a pool runs up to `slots_per_worker` jobs at once (default: the pool's max
concurrency, and never outside its min/max), so it needs `ceil(L / slots_per_worker)`
workers, at least enough for the pool's min concurrency and at most `worker_limits.max`.

The forecast file is JSON, read into the `Forecast` model; README.md ("Capacity plan") shows a
complete, valid example and what each field means (a test parses that example). A refused
entry is named by its path, `forecast.hours[0].hour is invalid: ...`.

Spot workers are `floor(workers x spot_share)`, the rest on-demand (rounding towards the
capacity that cannot be taken away). Safe because jobs are idempotent and acked late.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Annotated, Any, NoReturn, Self

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, model_validator

from agentqueue.errors import AgentQueueError
from agentqueue.scheduler.pools import PoolSpec
from agentqueue.strict import StrictModel, describe_all, field_name, invalid

FORECAST = "forecast"  # the root of every field name in an error
_MONEY_STEP = Decimal("0.0001")
_HOUR_EXAMPLE = "e.g. 2026-11-28T00:00Z"


class InvalidForecast(AgentQueueError):
    """The forecast file cannot be planned from; the message names the bad entry."""

    code = "invalid_forecast"


def _aware_time(value: object) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"not an ISO 8601 time, {_HOUR_EXAMPLE}") from None
    if moment.utcoffset() is None:
        raise ValueError(f"needs a time zone, {_HOUR_EXAMPLE}")
    return moment.astimezone(UTC)


def _share(value: Decimal) -> Decimal:
    if not Decimal(0) <= value <= Decimal(1):
        raise ValueError("must be between 0 and 1")
    return value


Amount = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
Share = Annotated[Decimal, Field(allow_inf_nan=False), AfterValidator(_share)]
Count = Annotated[int, Field(strict=True, ge=0)]


class HourForecast(StrictModel):
    """One hour: `{"hour": "2026-11-28T00:00Z", "pools": {"batch": 40}}` (requests per second)."""

    hour: Annotated[datetime, BeforeValidator(_aware_time)]
    requests_per_s: dict[str, Amount] = Field(default_factory=dict, alias="pools")


class WorkerLimits(StrictModel):
    """The fewest and most workers of a pool: `{"min": 1, "max": 20}`, either optional."""

    min_workers: Count | None = Field(default=None, alias="min")
    max_workers: Count | None = Field(default=None, alias="max")

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Self:
        fewest, most = self.min_workers, self.max_workers
        if fewest is not None and most is not None and fewest > most:
            raise ValueError(f"min {fewest} above max {most}")
        return self


class Forecast(StrictModel):
    """A forecast file; see the module docstring and README.md for its format."""

    hours: tuple[HourForecast, ...] = Field(min_length=1)
    avg_job_seconds: dict[str, Amount] = Field(default_factory=dict)
    worker_hourly_cost_usd: Amount
    spot_discount: Share = Decimal(0)
    spot_share: Share = Decimal(0)
    current_workers: dict[str, Count] = Field(default_factory=dict)
    current_spot_share: Share = Decimal(0)
    slots_per_worker: dict[str, Count] = Field(default_factory=dict)
    worker_limits: dict[str, WorkerLimits] = Field(default_factory=dict)


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
    try:
        _share(share)
    except ValueError as exc:
        _refuse("spot_share", str(exc), share)
    current = {**forecast.current_workers, **(current_workers or {})}
    named = {name for hour in forecast.hours for name in hour.requests_per_s} | set(current)
    unknown = sorted(named - set(pools_by_name))
    if unknown:
        _refuse("", f"pools {unknown} are not defined; defined: {sorted(pools_by_name)}")
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
            _refuse(
                f"avg_job_seconds.{pool.name}",
                f"no entry for pool {pool.name!r}, which has requests",
            )
        seconds = Decimal(0)
    in_flight = rps * seconds
    slots = forecast.slots_per_worker.get(pool.name, pool.max_concurrency)
    if not pool.min_concurrency <= slots <= pool.max_concurrency or slots < 1:
        _refuse(
            f"slots_per_worker.{pool.name}",
            f"outside the pool's {pool.min_concurrency}-{pool.max_concurrency}",
            slots,
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
        _refuse("", f"cannot read {path}: {exc.strerror}")
    return parse_forecast(text)


def parse_forecast(text: str) -> Forecast:
    """Parse forecast JSON (numbers exact, as `Decimal`); raises `InvalidForecast` naming every
    refused entry by its path (`forecast.hours[0].hour`)."""
    try:
        raw = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        _refuse("", f"it is not JSON ({exc.msg} at line {exc.lineno})")
    try:
        return Forecast.model_validate(raw)
    except ValidationError as exc:
        raise InvalidForecast(describe_all(FORECAST, exc)) from None


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _refuse(path: str, problem: str, value: object = None) -> NoReturn:
    where = field_name(FORECAST, path.split(".") if path else ())
    raise InvalidForecast(invalid(where, problem, None if value is None else str(value)))
