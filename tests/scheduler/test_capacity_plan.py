"""Capacity plan: Little's law per pool and hour, worker limits, and the cost with spot capacity."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agentqueue.cli.plan_commands import plan
from agentqueue.scheduler.capacity_plan import (
    InvalidForecast,
    parse_forecast,
    plan_capacity,
)
from agentqueue.scheduler.pools import DEFAULT_POOLS, PoolSpec

FORECAST: dict[str, Any] = {
    "hours": [
        {"hour": "2026-11-28T00:00Z", "pools": {"interactive": 12.5, "batch": 40}},
        {"hour": "2026-11-28T01:00Z", "pools": {"interactive": "50", "batch": 0}},
        {"hour": "2026-11-28T03:00+01:00", "pools": {"batch": 100}},
    ],
    "avg_job_seconds": {"interactive": 4, "batch": 20},
    "slots_per_worker": {"batch": 16},
    "worker_limits": {"batch": {"max": 60}},
    "current_workers": {"interactive": 2, "batch": 10},
    "worker_hourly_cost_usd": "0.20",
    "spot_discount": "0.7",
    "spot_share": "0.5",
}


def write_forecast(tmp_path: Path, body: dict[str, Any]) -> Path:
    path = tmp_path / "forecast.json"
    path.write_text(json.dumps(body))
    return path


def run_plan(tmp_path: Path, *args: str, body: dict[str, Any] | None = None) -> Any:
    path = write_forecast(tmp_path, FORECAST if body is None else body)
    return CliRunner().invoke(plan, ["--forecast", str(path), *args])


def test_plan_numbers_per_pool_and_hour(tmp_path: Path) -> None:
    # Given the forecast above and the default pools (interactive 64 slots per worker)
    result = run_plan(tmp_path, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    rows = {(row["hour"], row["pool"]): row for row in data["rows"]}

    # 00:00 interactive: 12.5 req/s x 4 s = 50 in flight -> ceil(50/64) = 1 worker, 1 fewer
    first = rows[("2026-11-28T00:00:00Z", "interactive")]
    assert (first["in_flight"], first["slots_per_worker"], first["workers"]) == ("50.0", 64, 1)
    assert (first["change"], first["hourly_cost_usd"], first["cost_change_usd"]) == (
        -1,
        "0.2000",
        "-0.2000",
    )
    # 00:00 batch: 40 x 20 = 800 in flight / 16 = 50 workers: 25 spot at 30% of $0.20
    batch = rows[("2026-11-28T00:00:00Z", "batch")]
    assert (batch["workers"], batch["change"]) == (50, 40)
    assert (batch["on_demand_workers"], batch["spot_workers"]) == (25, 25)
    assert batch["hourly_cost_usd"] == "6.5000"  # 25 x 0.20 + 25 x 0.06
    assert batch["cost_change_usd"] == "4.5000"  # against 10 on-demand workers ($2.00)
    # 01:00 interactive: 50 x 4 = 200 / 64 -> 4 workers (2 spot): 0.40 + 0.12
    assert rows[("2026-11-28T01:00:00Z", "interactive")]["workers"] == 4
    assert rows[("2026-11-28T01:00:00Z", "interactive")]["hourly_cost_usd"] == "0.5200"
    # 01:00 batch: no traffic, but the pool's min concurrency keeps one worker
    assert rows[("2026-11-28T01:00:00Z", "batch")]["workers"] == 1
    # 02:00 UTC (given as 03:00+01:00) batch: 2000 / 16 = 125, capped at the limit of 60
    capped = rows[("2026-11-28T02:00:00Z", "batch")]
    assert (capped["workers"], capped["demand_exceeds_max"]) == (60, True)
    assert capped["hourly_cost_usd"] == "7.8000"
    assert rows[("2026-11-28T02:00:00Z", "interactive")]["requests_per_s"] == "0"

    # Totals per hour and over the horizon
    assert [(h["workers"], h["hourly_cost_usd"], h["cost_change_usd"]) for h in data["hours"]] == [
        (51, "6.7000", "4.3000"),
        (5, "0.7200", "-1.6800"),
        (61, "8.0000", "5.6000"),
    ]
    assert (data["total_cost_usd"], data["total_cost_change_usd"]) == ("15.4200", "8.2200")


def test_options_override_spot_share_and_current_workers(tmp_path: Path) -> None:
    # Given --spot-share 0 and 50 batch workers running now
    result = run_plan(tmp_path, "--json", "--spot-share", "0", "--current", "batch=50")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["rows"]
    batch = next(row for row in rows if row["pool"] == "batch")
    # Then all 50 are on-demand at $0.20 and nothing changes from now
    assert (batch["spot_workers"], batch["hourly_cost_usd"], batch["change"]) == (0, "10.0000", 0)
    assert batch["cost_change_usd"] == "0.0000"


def test_text_output_shows_the_table_and_the_peak(tmp_path: Path) -> None:
    result = run_plan(tmp_path)
    assert result.exit_code == 0, result.output
    assert "peak 2026-11-28 02:00Z: 61 workers, $8.00/hour (+$5.60 vs now)" in result.output
    assert "over 3 hours: $15.42 (+$8.22 vs now)" in result.output
    assert "interactive" in result.output and "batch" in result.output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(["--spot-share", "1.5"], "between 0 and 1"), (["--current", "batch"], "POOL=N")],
)
def test_bad_options_are_usage_errors(tmp_path: Path, args: list[str], fragment: str) -> None:
    result = run_plan(tmp_path, *args)
    assert result.exit_code == 2
    assert fragment in result.output


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(plan, ["--forecast", str(tmp_path / "nope.json")])
    assert result.exit_code == 2


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"hours": []}, "forecast.hours is invalid: needs at least 1 item"),
        ({"hours": [{"hour": "2026-11-28T00:00", "pools": {}}]}, "needs a time zone"),
        ({"hours": [{"hour": "tomorrow", "pools": {}}]}, "not an ISO 8601 time"),
        ({"spot_share": "2"}, "forecast.spot_share is invalid: must be between 0 and 1"),
        (
            {"worker_hourly_cost_usd": -1},
            "forecast.worker_hourly_cost_usd is invalid: Input should be greater than or equal",
        ),
        ({"avg_job_seconds": {"interactive": 4}}, "no entry for pool 'batch'"),
        ({"current_workers": {"gpu": 1}}, "pools ['gpu'] are not defined"),
        ({"slots_per_worker": {"batch": 33}}, "outside the pool's 1-32"),
        ({"worker_limits": {"batch": {"min": 5, "max": 2}}}, "min 5 above max 2"),
    ],
)
def test_bad_forecasts_are_refused_with_a_code(
    tmp_path: Path, change: dict[str, Any], fragment: str
) -> None:
    # Given a forecast with one bad entry, When planned, Then InvalidForecast names it
    result = run_plan(tmp_path, body={**FORECAST, **change})
    assert isinstance(result.exception, InvalidForecast), result.output
    assert result.exception.code == "invalid_forecast"
    assert fragment in result.exception.message


def test_plan_follows_configured_pools_and_worker_minimums() -> None:
    # Given a custom pool needing at least 10 slots, 4 per worker, and a forecast of idle hours
    pools = (*DEFAULT_POOLS, PoolSpec("gpu", ("agentqueue.low",), 10, 4 * 10))
    forecast = parse_forecast(
        json.dumps(
            {
                "hours": [{"hour": "2026-11-28T00:00Z", "pools": {"gpu": "0.5"}}],
                "avg_job_seconds": {"gpu": "30"},
                "slots_per_worker": {"gpu": 10},
                "worker_limits": {"interactive": {"min": 3}},
                "worker_hourly_cost_usd": "1.10",
            }
        )
    )
    result = plan_capacity(forecast, pools)
    workers = {row.pool: row.workers for row in result.rows}
    # Then gpu needs 15 in flight / 10 = 2 workers; interactive keeps its configured 3
    assert workers == {"interactive": 3, "batch": 1, "gpu": 2}
    assert sum(row.hourly_cost_usd for row in result.rows) == Decimal("6.60")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"hours": [*FORECAST["hours"][:1], {"hour": "2026-11-28T01:00", "pools": {}}]},
            "forecast.hours[1].hour is invalid: needs a time zone, e.g. 2026-11-28T00:00Z "
            "(got '2026-11-28T01:00')",
        ),
        (
            {"hours": [{"hour": "2026-11-28T00:00Z", "pools": {"batch": "lots"}}]},
            "forecast.hours[0].pools.batch is invalid: Input should be a valid decimal",
        ),
        ({"worker_limits": {"batch": {"max": 2.5}}}, "forecast.worker_limits.batch.max is invalid"),
        ({"spot_shares": "0.5"}, "forecast.spot_shares is invalid: unknown key (a typo?)"),
        ({"slots_per_worker": {"batch": 33}}, "forecast.slots_per_worker.batch is invalid"),
    ],
)
def test_a_bad_forecast_entry_is_named_by_its_path(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    # Given a forecast with one bad entry, When planned, Then the error names the entry's path
    # the way settings errors name theirs (`VARIABLE.path is invalid: ...`)
    result = run_plan(tmp_path, body={**FORECAST, **change})
    assert isinstance(result.exception, InvalidForecast), result.output
    assert result.exception.code == "invalid_forecast"
    assert result.exception.message.startswith(expected)


def test_a_good_forecast_is_typed() -> None:
    forecast = parse_forecast(json.dumps(FORECAST))
    assert forecast.hours[2].hour == datetime(2026, 11, 28, 2, tzinfo=UTC)
    assert forecast.hours[0].requests_per_s == {"interactive": Decimal("12.5"), "batch": 40}
    assert forecast.worker_limits["batch"].max_workers == 60
    assert forecast.worker_limits["batch"].min_workers is None
    assert (forecast.spot_share, forecast.current_spot_share) == (Decimal("0.5"), 0)
