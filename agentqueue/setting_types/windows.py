"""`AGENTQUEUE_OFFPEAK_WINDOWS`: `HH:MM-HH:MM[,HH:MM-HH:MM...]` parsed to `OffPeakWindow`s.

A window is a pair of wall-clock times that recurs every local day; it closes on the next day
when its end is not after its start (`22:00-06:00`). `24:00` may end a window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, TypeAdapter, ValidationError
from pydantic_settings import NoDecode

from agentqueue.errors import InvalidOffPeakWindows
from agentqueue.strict import describe_all

OFFPEAK_WINDOWS_VARIABLE = "AGENTQUEUE_OFFPEAK_WINDOWS"
MINUTES_PER_DAY = 24 * 60
_WINDOW = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
_FORMAT = "use HH:MM-HH:MM windows separated by commas, e.g. 22:00-06:00,12:00-13:00"


@dataclass(frozen=True, order=True)
class OffPeakWindow:
    """One daily window, as minutes after local midnight: start in [0, 1440), end in (0, 1440]."""

    start_minute: int
    end_minute: int

    @property
    def crosses_midnight(self) -> bool:
        return self.end_minute <= self.start_minute

    def __str__(self) -> str:
        return f"{_hhmm(self.start_minute)}-{_hhmm(self.end_minute)}"


def windows_text(windows: tuple[OffPeakWindow, ...]) -> str:
    """The windows as the variable writes them: `12:00-13:00,22:00-06:00`."""
    return ",".join(str(window) for window in windows)


def _parts(value: object) -> object:
    if not isinstance(value, str):
        return value
    parts = [part.strip() for part in value.split(",")]
    if not any(parts):
        raise ValueError(f"it is empty; {_FORMAT}")
    return parts


def _window(value: object) -> object:
    if not isinstance(value, str):
        return value
    match = _WINDOW.match(value)
    if match is None:
        raise ValueError(f"not HH:MM-HH:MM; {_FORMAT}")
    start_h, start_m, end_h, end_m = (int(group) for group in match.groups())
    start = _minute_of_day(start_h, start_m, allow_24=False)
    end = _minute_of_day(end_h, end_m, allow_24=True)
    if start is None or end is None:
        raise ValueError(f"a time is outside 00:00-23:59 (or 24:00 as an end); {_FORMAT}")
    if start == end % MINUTES_PER_DAY and end != MINUTES_PER_DAY:
        raise ValueError(f"it is empty (for all day write 00:00-24:00); {_FORMAT}")
    return OffPeakWindow(start, end)


def _sorted_unique(windows: tuple[OffPeakWindow, ...]) -> tuple[OffPeakWindow, ...]:
    return tuple(sorted(set(windows)))


OffPeakWindows = Annotated[
    tuple[Annotated[OffPeakWindow, BeforeValidator(_window)], ...],
    NoDecode,
    BeforeValidator(_parts),
    AfterValidator(_sorted_unique),
    Field(min_length=1),
]
"""The settings type: text in the variable's format (or windows), held sorted, each once."""

_WINDOWS: TypeAdapter[tuple[OffPeakWindow, ...]] = TypeAdapter(OffPeakWindows)


def parse_offpeak_windows(
    text: str, *, variable: str = OFFPEAK_WINDOWS_VARIABLE
) -> tuple[OffPeakWindow, ...]:
    """Parse the variable's format; raises `InvalidOffPeakWindows` naming `variable` and the
    position of the offending part (`AGENTQUEUE_OFFPEAK_WINDOWS[1]`)."""
    try:
        return _WINDOWS.validate_python(text)
    except ValidationError as exc:
        raise InvalidOffPeakWindows(describe_all(variable, exc)) from None


def _minute_of_day(hour: int, minute: int, *, allow_24: bool) -> int | None:
    if allow_24 and (hour, minute) == (24, 0):
        return MINUTES_PER_DAY
    if hour > 23 or minute > 59:
        return None
    return hour * 60 + minute


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"
