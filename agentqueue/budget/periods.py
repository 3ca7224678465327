"""Budget periods and their windows (daily, weekly from Monday, monthly) in the configured zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class Period(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


PERIODS: tuple[Period, ...] = (Period.DAILY, Period.WEEKLY, Period.MONTHLY)


@dataclass(frozen=True, slots=True)
class Window:
    """One window of a period: [start, end) as aware UTC datetimes, plus its local first day."""

    period: Period
    start: datetime
    end: datetime
    first_day: date
    timezone: str

    def label(self) -> str:
        """A short human name for the window, e.g. `2026-03-09` or `week of 2026-03-09`."""
        if self.period is Period.DAILY:
            return self.first_day.isoformat()
        if self.period is Period.WEEKLY:
            return f"week of {self.first_day.isoformat()}"
        return self.first_day.strftime("%Y-%m")

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def _first_day(period: Period, day: date) -> date:
    if period is Period.DAILY:
        return day
    if period is Period.WEEKLY:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _next_first_day(period: Period, first: date) -> date:
    if period is Period.DAILY:
        return first + timedelta(days=1)
    if period is Period.WEEKLY:
        return first + timedelta(days=7)
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def window_for(period: Period | str, moment: datetime, timezone: str) -> Window:
    """The window of `period` containing `moment` (aware), with boundaries at local midnight.

    Raises:
        ValueError: for a naive `moment`.
    """
    if moment.tzinfo is None:
        raise ValueError("window_for needs an aware datetime")
    period = Period(period)
    zone = ZoneInfo(timezone)
    first = _first_day(period, moment.astimezone(zone).date())
    following = _next_first_day(period, first)
    return Window(
        period=period,
        start=_local_midnight(first, zone),
        end=_local_midnight(following, zone),
        first_day=first,
        timezone=timezone,
    )


def current_windows(moment: datetime, timezone: str) -> dict[Period, Window]:
    """The daily, weekly and monthly windows containing `moment`."""
    return {period: window_for(period, moment, timezone) for period in PERIODS}
