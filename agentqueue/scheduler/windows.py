"""Off-peak windows: answer "off-peak now?" and "from when?".

A window is a pair of wall-clock times in `AGENTQUEUE_TIMEZONE` that recurs every local day:
it opens at its start and closes at its end, on the next day when the end is not after the
start (`22:00-06:00`). `24:00` may end a window. Several windows are comma separated; the
settings hold them parsed (`agentqueue.setting_types.windows`).

Daylight-saving rule: a boundary (start or end) happens at the first instant of its local day
at which the wall clock reads the boundary time or later. Hence

- a boundary in the hour skipped at spring-forward (01:30 on Europe/London's night, when
  01:00 GMT jumps to 02:00 BST) happens at the jump itself, 02:00 BST = 01:00 UTC;
- a boundary in the hour repeated at fall-back happens at its first occurrence (01:30 BST,
  not the later 01:30 GMT), so each window opens and closes once per local day, never twice;
- a window lying wholly inside a skipped hour does not happen that day.

All functions take an aware `now` and return aware datetimes in UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from agentqueue.errors import InvalidOffPeakWindows as InvalidOffPeakWindows
from agentqueue.setting_types.windows import MINUTES_PER_DAY, OFFPEAK_WINDOWS_VARIABLE
from agentqueue.setting_types.windows import OffPeakWindow as OffPeakWindow
from agentqueue.setting_types.windows import parse_offpeak_windows as parse_offpeak_windows
from agentqueue.settings import Settings
from agentqueue.strict import invalid

# A merged opening longer than this can only come from windows covering every hour.
_ALWAYS_OPEN = timedelta(days=3)


@dataclass(frozen=True)
class OffPeakSchedule:
    """The configured windows and their time zone, for callers that hold settings."""

    windows: tuple[OffPeakWindow, ...]
    tz: ZoneInfo

    @classmethod
    def from_settings(cls, settings: Settings) -> OffPeakSchedule:
        """The settings' windows (validated when the settings were read) in their time zone."""
        return cls(settings.offpeak_windows, ZoneInfo(settings.timezone))

    def is_off_peak(self, now: datetime) -> bool:
        return is_off_peak(now, self.windows, self.tz)

    def next_window_start(self, now: datetime) -> datetime:
        return next_window_start(now, self.windows, self.tz)

    def window_end(self, now: datetime) -> datetime | None:
        return window_end(now, self.windows, self.tz)


def is_off_peak(now: datetime, windows: Iterable[OffPeakWindow], tz: tzinfo) -> bool:
    """True when `now` lies inside one of the windows (start inclusive, end exclusive)."""
    return _opening_containing(now, tuple(windows), tz, days_ahead=1) is not None


def next_window_start(now: datetime, windows: Iterable[OffPeakWindow], tz: tzinfo) -> datetime:
    """When off-peak next begins, in UTC; `now` itself when it is already off-peak."""
    _require_aware(now)
    for start, end in _merged_openings(tuple(windows), tz, _local_day(now, tz), days_ahead=9):
        if end > now:
            return max(start, now.astimezone(UTC))
    raise InvalidOffPeakWindows(
        invalid(OFFPEAK_WINDOWS_VARIABLE, "it never opens in the coming week")
    )


def window_end(now: datetime, windows: Iterable[OffPeakWindow], tz: tzinfo) -> datetime | None:
    """When the window containing `now` closes, in UTC (adjacent windows count as one).

    None when `now` is not off-peak, or when the windows cover every hour and never close.
    """
    opening = _opening_containing(now, tuple(windows), tz, days_ahead=9)
    if opening is None:
        return None
    start, end = opening
    return None if end - start > _ALWAYS_OPEN else end


def boundary_instant(day: date, minute: int, tz: tzinfo) -> datetime:
    """The UTC instant at which local `day`'s wall clock first reads `minute` (or later).

    `minute` may reach past midnight (1440 is the next day's 00:00). This is the rule the
    module docstring describes for skipped and repeated local times.
    """
    day += timedelta(days=minute // MINUTES_PER_DAY)
    minute %= MINUTES_PER_DAY
    wall = datetime.combine(day, time(minute // 60, minute % 60))
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if _wall_clock(first, tz) == wall:
        return first  # the time exists; fold=0 picks its first occurrence when it repeats
    # The time was skipped by a forward jump: find the jump, the first second whose wall
    # clock is at or past `wall`. fold=1 maps to an instant before it, fold=0 after it.
    low = int(wall.replace(tzinfo=tz, fold=1).astimezone(UTC).timestamp())
    high = int(first.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if _wall_clock(datetime.fromtimestamp(middle, UTC), tz) >= wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _opening_containing(
    now: datetime, windows: tuple[OffPeakWindow, ...], tz: tzinfo, *, days_ahead: int
) -> tuple[datetime, datetime] | None:
    _require_aware(now)
    for start, end in _merged_openings(windows, tz, _local_day(now, tz), days_ahead=days_ahead):
        if start <= now < end:
            return start, end
    return None


def _merged_openings(
    windows: tuple[OffPeakWindow, ...], tz: tzinfo, today: date, *, days_ahead: int
) -> list[tuple[datetime, datetime]]:
    """Openings from yesterday (whose overnight windows reach into today) onwards, merged."""
    openings = []
    for offset in range(-1, days_ahead + 1):
        day = today + timedelta(days=offset)
        for window in windows:
            end_minute = window.end_minute + (MINUTES_PER_DAY if window.crosses_midnight else 0)
            start = boundary_instant(day, window.start_minute, tz)
            end = boundary_instant(day, end_minute, tz)
            if end > start:  # a window wholly inside a skipped hour does not happen
                openings.append((start, end))
    openings.sort()
    merged: list[tuple[datetime, datetime]] = []
    for start, end in openings:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _local_day(now: datetime, tz: tzinfo) -> date:
    return now.astimezone(tz).date()


def _wall_clock(instant: datetime, tz: tzinfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None, fold=0)


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
