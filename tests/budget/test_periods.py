"""Budget windows: daily, weekly (from Monday) and monthly, in the configured time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from agentqueue.budget.periods import Period, current_windows, window_for


def test_daily_window_in_utc() -> None:
    window = window_for("daily", datetime(2026, 3, 11, 23, 59, 59, tzinfo=UTC), "UTC")
    assert window.start == datetime(2026, 3, 11, tzinfo=UTC)
    assert window.end == datetime(2026, 3, 12, tzinfo=UTC)
    assert window.label() == "2026-03-11"


def test_monthly_window_across_the_year_end() -> None:
    """Given 31 December, then the month runs to 1 January of the next year."""
    window = window_for(Period.MONTHLY, datetime(2026, 12, 31, 12, tzinfo=UTC), "UTC")
    assert window.start == datetime(2026, 12, 1, tzinfo=UTC)
    assert window.end == datetime(2027, 1, 1, tzinfo=UTC)
    assert window.label() == "2026-12"


def test_weekly_window_starts_on_monday_across_a_month_boundary() -> None:
    """Given Sunday 1 March 2026, then the week started Monday 23 February."""
    window = window_for("weekly", datetime(2026, 3, 1, 10, tzinfo=UTC), "UTC")
    assert window.first_day == date(2026, 2, 23)
    assert window.end - window.start == timedelta(days=7)
    assert window.label() == "week of 2026-02-23"


def test_time_zone_moves_the_day_boundary() -> None:
    """Given 23:30 UTC on 11 March, then in Tokyo it is already 12 March, in Los Angeles still
    11 March, and windows start at local midnight."""
    moment = datetime(2026, 3, 11, 23, 30, tzinfo=UTC)
    tokyo = window_for("daily", moment, "Asia/Tokyo")
    assert tokyo.first_day == date(2026, 3, 12)
    assert tokyo.start == datetime(2026, 3, 11, 15, tzinfo=UTC)
    angeles = window_for("daily", moment, "America/Los_Angeles")
    assert angeles.first_day == date(2026, 3, 11)
    assert angeles.start == datetime(2026, 3, 11, 7, tzinfo=UTC)


def test_month_boundary_depends_on_the_zone() -> None:
    """Given 22:00 UTC on 31 March, then in Berlin (UTC+2 in summer) it is April."""
    moment = datetime(2026, 3, 31, 22, 30, tzinfo=UTC)
    assert window_for("monthly", moment, "Europe/Berlin").first_day == date(2026, 4, 1)
    assert window_for("monthly", moment, "UTC").first_day == date(2026, 3, 1)


def test_daylight_saving_day_is_23_hours() -> None:
    """Given the day New York springs forward, then its daily window is 23 hours long."""
    window = window_for("daily", datetime(2026, 3, 8, 12, tzinfo=UTC), "America/New_York")
    assert window.end - window.start == timedelta(hours=23)


def test_current_windows_contain_the_moment() -> None:
    moment = datetime(2026, 7, 15, 8, tzinfo=UTC)
    windows = current_windows(moment, "Europe/Paris")
    assert set(windows) == {Period.DAILY, Period.WEEKLY, Period.MONTHLY}
    assert all(window.contains(moment) for window in windows.values())


def test_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError):
        window_for("daily", datetime(2026, 3, 11), "UTC")
