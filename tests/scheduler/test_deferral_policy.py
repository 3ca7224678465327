"""Deferral: low waits for off-peak, budget pressure defers, deadlines and critical win."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agentqueue.jobs import Priority
from agentqueue.scheduler.deferral_policy import release_time_for
from agentqueue.scheduler.windows import parse_offpeak_windows

LONDON = ZoneInfo("Europe/London")
WINDOWS = parse_offpeak_windows("22:00-06:00")
AFTERNOON = datetime(2026, 6, 10, 14, 0, tzinfo=UTC)  # 15:00 BST: peak
TONIGHT = datetime(2026, 6, 10, 21, 0, tzinfo=UTC)  # 22:00 BST: the window opens
NIGHT = datetime(2026, 6, 10, 23, 0, tzinfo=UTC)  # 00:00 BST: off-peak


def decide(
    priority: Priority | str,
    now: datetime,
    *,
    deadline: datetime | None = None,
    expected_run_s: float = 60,
    budget_says_defer: bool = False,
) -> datetime | None:
    return release_time_for(
        priority, deadline, expected_run_s, now, WINDOWS, LONDON, budget_says_defer
    )


def test_low_job_at_peak_waits_for_the_window() -> None:
    # Given a low job at 15:00 London, Then it is released when the window opens at 22:00
    assert decide(Priority.LOW, AFTERNOON) == TONIGHT
    assert decide("low", AFTERNOON) == TONIGHT


def test_low_job_off_peak_runs_now() -> None:
    assert decide(Priority.LOW, NIGHT) is None


@pytest.mark.parametrize("priority", [Priority.NORMAL, Priority.HIGH])
def test_other_priorities_run_at_peak_without_budget_pressure(priority: Priority) -> None:
    assert decide(priority, AFTERNOON) is None


@pytest.mark.parametrize("priority", [Priority.LOW, Priority.NORMAL, Priority.HIGH])
def test_budget_pressure_defers_non_critical_work_to_the_window(priority: Priority) -> None:
    # Given the ladder says defer, When a non-critical job arrives at peak, Then it waits
    assert decide(priority, AFTERNOON, budget_says_defer=True) == TONIGHT


def test_budget_pressure_off_peak_runs_now() -> None:
    # Off-peak is where deferred work goes; holding it longer would gain nothing
    assert decide(Priority.NORMAL, NIGHT, budget_says_defer=True) is None


def test_critical_is_never_deferred() -> None:
    assert decide(Priority.CRITICAL, AFTERNOON, budget_says_defer=True) is None
    assert decide("critical", AFTERNOON) is None


def test_deadline_before_the_window_releases_in_time_to_finish() -> None:
    # Given a low job due at 18:00 UTC that takes 10 minutes, at 14:00 UTC
    deadline = datetime(2026, 6, 10, 18, 0, tzinfo=UTC)
    # Then it is released at 17:50 UTC, not at the 21:00 UTC window
    assert decide(Priority.LOW, AFTERNOON, deadline=deadline, expected_run_s=600) == (
        deadline - timedelta(minutes=10)
    )


def test_deadline_too_near_runs_now() -> None:
    # Given a deadline 5 minutes away and a 10-minute job, Then it runs now
    deadline = AFTERNOON + timedelta(minutes=5)
    assert decide(Priority.LOW, AFTERNOON, deadline=deadline, expected_run_s=600) is None
    # And exactly at the limit it also runs now
    deadline = AFTERNOON + timedelta(minutes=10)
    assert decide(Priority.LOW, AFTERNOON, deadline=deadline, expected_run_s=600) is None
    # And a deadline already past runs now
    assert decide(Priority.LOW, AFTERNOON, deadline=AFTERNOON - timedelta(hours=1)) is None


def test_deadline_after_the_window_changes_nothing() -> None:
    deadline = datetime(2026, 6, 11, 4, 0, tzinfo=ZoneInfo("America/New_York"))
    assert decide(Priority.LOW, AFTERNOON, deadline=deadline, expected_run_s=600) == TONIGHT


def test_deadline_caps_budget_deferral_too() -> None:
    deadline = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)
    assert decide(Priority.NORMAL, AFTERNOON, deadline=deadline, budget_says_defer=True) == (
        deadline - timedelta(seconds=60)
    )


def test_release_time_is_utc_and_naive_deadline_is_refused() -> None:
    released = decide(Priority.LOW, datetime(2026, 6, 10, 16, 0, tzinfo=LONDON))
    assert released is not None and released.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(Priority.LOW, AFTERNOON, deadline=datetime(2026, 6, 10, 18, 0))
    with pytest.raises(ValueError):
        decide("urgent", AFTERNOON)
