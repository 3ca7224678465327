"""Off-peak windows: parsing, midnight crossing, several windows, and the daylight-saving rule."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agentqueue.scheduler.windows import (
    InvalidOffPeakWindows,
    OffPeakSchedule,
    OffPeakWindow,
    is_off_peak,
    next_window_start,
    parse_offpeak_windows,
    window_end,
)
from agentqueue.settings import load_settings

UTC_ZONE = ZoneInfo("UTC")
LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
DEFAULT = parse_offpeak_windows("22:00-06:00")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# Parsing.


def test_default_and_several_windows_parse_to_minutes_of_the_day() -> None:
    # Given the default and a two-window value with spaces
    # Then each becomes (start, end) minutes, sorted, the overnight one marked as crossing
    assert (OffPeakWindow(22 * 60, 6 * 60),) == DEFAULT
    assert DEFAULT[0].crosses_midnight
    both = parse_offpeak_windows(" 22:00-06:00 , 12:00 - 13:30")
    assert both == (OffPeakWindow(720, 810), OffPeakWindow(1320, 360))
    assert [str(window) for window in both] == ["12:00-13:30", "22:00-06:00"]
    assert parse_offpeak_windows("18:00-24:00") == (OffPeakWindow(1080, 1440),)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " , ",
        "22:00",
        "22-06",
        "25:00-06:00",
        "22:60-06:00",
        "24:00-06:00",
        "10:00-10:00",
        "22:00-06:00,nonsense",
        "22:00-06:00;12:00-13:00",
    ],
)
def test_bad_values_are_refused_naming_the_variable(text: str) -> None:
    # Given a malformed AGENTQUEUE_OFFPEAK_WINDOWS, When parsed, Then a coded error names it
    with pytest.raises(InvalidOffPeakWindows) as raised:
        parse_offpeak_windows(text)
    assert raised.value.code == "invalid_offpeak_windows"
    assert "AGENTQUEUE_OFFPEAK_WINDOWS" in raised.value.message
    assert "22:00-06:00" in raised.value.message  # says what a good value looks like


def test_schedule_reads_windows_and_zone_from_settings() -> None:
    # Given settings with two windows in New York time
    settings = load_settings(offpeak_windows="22:00-06:00,12:00-13:00", timezone="America/New_York")
    schedule = OffPeakSchedule.from_settings(settings)
    # Then 12:30 New York (17:30 UTC in January) is off-peak, 11:59 is not
    assert schedule.tz == NEW_YORK
    assert schedule.is_off_peak(utc(2026, 1, 15, 17, 30))
    assert not schedule.is_off_peak(utc(2026, 1, 15, 16, 59))
    assert schedule.next_window_start(utc(2026, 1, 15, 16, 0)) == utc(2026, 1, 15, 17, 0)
    assert schedule.window_end(utc(2026, 1, 15, 17, 30)) == utc(2026, 1, 15, 18, 0)


def test_settings_with_bad_windows_fail_with_the_coded_error() -> None:
    with pytest.raises(InvalidOffPeakWindows):
        OffPeakSchedule.from_settings(load_settings(offpeak_windows="late-night"))


# Midnight and several windows (UTC, no DST).


@pytest.mark.parametrize(
    ("hour", "minute", "expected"),
    [
        (21, 59, False),
        (22, 0, True),
        (23, 59, True),
        (0, 0, True),
        (5, 59, True),
        (6, 0, False),
        (12, 0, False),
    ],
)
def test_overnight_window_includes_its_start_and_excludes_its_end(
    hour: int, minute: int, expected: bool
) -> None:
    assert is_off_peak(utc(2026, 6, 10, hour, minute), DEFAULT, UTC_ZONE) is expected


def test_next_start_is_tonight_or_now_when_inside() -> None:
    # Given the default window, When asked at 14:00, Then 22:00 today; inside, Then now itself
    assert next_window_start(utc(2026, 6, 10, 14, 0), DEFAULT, UTC_ZONE) == utc(2026, 6, 10, 22)
    assert next_window_start(utc(2026, 6, 10, 6, 0), DEFAULT, UTC_ZONE) == utc(2026, 6, 10, 22)
    inside = utc(2026, 6, 11, 3, 17, 5)
    assert next_window_start(inside, DEFAULT, UTC_ZONE) == inside
    # A non-UTC `now` is answered in UTC
    assert next_window_start(
        datetime(2026, 6, 10, 16, 0, tzinfo=ZoneInfo("Europe/Berlin")), DEFAULT, UTC_ZONE
    ) == utc(2026, 6, 10, 22)


def test_window_end_crosses_midnight_and_merges_adjacent_windows() -> None:
    # Given 22:00-06:00, When inside at 23:00, Then it ends at 06:00 tomorrow
    assert window_end(utc(2026, 6, 10, 23), DEFAULT, UTC_ZONE) == utc(2026, 6, 11, 6)
    # Given two touching windows, Then they close as one
    touching = parse_offpeak_windows("22:00-24:00,00:00-06:00")
    assert window_end(utc(2026, 6, 10, 23), touching, UTC_ZONE) == utc(2026, 6, 11, 6)
    assert is_off_peak(utc(2026, 6, 11, 0, 0), touching, UTC_ZONE)
    # Outside any window there is no end
    assert window_end(utc(2026, 6, 10, 12), DEFAULT, UTC_ZONE) is None


def test_several_windows_pick_the_nearest() -> None:
    windows = parse_offpeak_windows("22:00-06:00,12:00-13:00")
    assert next_window_start(utc(2026, 6, 10, 11), windows, UTC_ZONE) == utc(2026, 6, 10, 12)
    assert next_window_start(utc(2026, 6, 10, 13), windows, UTC_ZONE) == utc(2026, 6, 10, 22)
    assert window_end(utc(2026, 6, 10, 12, 30), windows, UTC_ZONE) == utc(2026, 6, 10, 13)


def test_all_day_window_is_always_off_peak_and_never_ends() -> None:
    always = parse_offpeak_windows("00:00-24:00")
    now = utc(2026, 3, 29, 0, 30)
    assert is_off_peak(now, always, LONDON)
    assert next_window_start(now, always, LONDON) == now
    assert window_end(now, always, LONDON) is None


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_off_peak(datetime(2026, 1, 1, 12), DEFAULT, UTC_ZONE)


# Daylight saving: Europe/London springs forward 2026-03-29 01:00 GMT -> 02:00 BST and falls
# back 2026-10-25 02:00 BST -> 01:00 GMT; America/New_York 2026-03-08 02:00 EST -> 03:00 EDT
# and 2026-11-01 02:00 EDT -> 01:00 EST.


def test_start_in_the_skipped_hour_opens_at_the_jump() -> None:
    # Given 01:30-03:00 London, on the spring-forward night 01:30 never shows on the clock
    windows = parse_offpeak_windows("01:30-03:00")
    # When asked the evening before, Then the window opens at the jump: 02:00 BST = 01:00 UTC
    assert next_window_start(utc(2026, 3, 28, 23), windows, LONDON) == utc(2026, 3, 29, 1)
    assert not is_off_peak(utc(2026, 3, 29, 0, 59, 59), windows, LONDON)
    assert is_off_peak(utc(2026, 3, 29, 1, 0), windows, LONDON)
    # And it closes at 03:00 BST = 02:00 UTC: an hour long that night, 1h30 on others
    assert window_end(utc(2026, 3, 29, 1, 30), windows, LONDON) == utc(2026, 3, 29, 2)
    assert window_end(utc(2026, 3, 30, 0, 45), windows, LONDON) == utc(2026, 3, 30, 2)


def test_window_wholly_in_the_skipped_hour_does_not_happen_that_night() -> None:
    # Given 01:10-01:50 London, which the spring-forward night skips entirely
    windows = parse_offpeak_windows("01:10-01:50")
    # Then the next opening is the following night, 01:10 BST = 00:10 UTC
    assert next_window_start(utc(2026, 3, 28, 23), windows, LONDON) == utc(2026, 3, 30, 0, 10)
    assert not any(
        is_off_peak(utc(2026, 3, 29, 0, 0) + timedelta(minutes=m), windows, LONDON)
        for m in range(0, 180, 5)
    )


def test_default_window_is_seven_hours_on_spring_forward_and_nine_on_fall_back() -> None:
    # Spring forward: 22:00 GMT (22:00 UTC) to 06:00 BST (05:00 UTC)
    start = next_window_start(utc(2026, 3, 28, 12), DEFAULT, LONDON)
    assert start == utc(2026, 3, 28, 22)
    assert window_end(start, DEFAULT, LONDON) == utc(2026, 3, 29, 5)
    # Fall back: 22:00 BST (21:00 UTC) to 06:00 GMT (06:00 UTC)
    start = next_window_start(utc(2026, 10, 24, 12), DEFAULT, LONDON)
    assert start == utc(2026, 10, 24, 21)
    assert window_end(start, DEFAULT, LONDON) == utc(2026, 10, 25, 6)


def test_window_in_the_repeated_hour_opens_once_at_the_first_occurrence() -> None:
    # Given 01:30-01:45 London; on the fall-back night 01:30 happens twice
    windows = parse_offpeak_windows("01:30-01:45")
    # Then it opens at the first 01:30 (BST, 00:30 UTC) and closes at the first 01:45
    assert next_window_start(utc(2026, 10, 24, 23), windows, LONDON) == utc(2026, 10, 25, 0, 30)
    assert window_end(utc(2026, 10, 25, 0, 35), windows, LONDON) == utc(2026, 10, 25, 0, 45)
    # And the second 01:35 on the clock (GMT, 01:35 UTC) is not off-peak
    assert not is_off_peak(utc(2026, 10, 25, 1, 35), windows, LONDON)
    # The next opening after it is the following night, 01:30 GMT
    assert next_window_start(utc(2026, 10, 25, 0, 46), windows, LONDON) == utc(2026, 10, 26, 1, 30)


def test_new_york_spring_forward_and_fall_back() -> None:
    # Spring forward: a 02:30 start does not exist; it opens at 03:00 EDT = 07:00 UTC
    windows = parse_offpeak_windows("02:30-04:00")
    assert next_window_start(utc(2026, 3, 8, 0), windows, NEW_YORK) == utc(2026, 3, 8, 7)
    assert window_end(utc(2026, 3, 8, 7), windows, NEW_YORK) == utc(2026, 3, 8, 8)
    # Fall back: 01:30 is ambiguous (first at 05:30 UTC, EDT); 02:30 EST is 07:30 UTC
    windows = parse_offpeak_windows("01:30-02:30")
    assert next_window_start(utc(2026, 11, 1, 0), windows, NEW_YORK) == utc(2026, 11, 1, 5, 30)
    assert window_end(utc(2026, 11, 1, 5, 30), windows, NEW_YORK) == utc(2026, 11, 1, 7, 30)
    # The repeated 01:45 (EST, 06:45 UTC) lies inside this window: it is one stretch of time
    assert is_off_peak(utc(2026, 11, 1, 6, 45), windows, NEW_YORK)


@pytest.mark.parametrize("zone", ["Europe/London", "America/New_York", "Australia/Lord_Howe"])
def test_answers_agree_with_each_other_around_the_year(zone: str) -> None:
    # Given random instants over a year (including every DST change) and awkward windows
    tz = ZoneInfo(zone)
    windows = parse_offpeak_windows("22:00-06:00,01:30-02:15,12:00-13:00")
    rng = random.Random(zone)
    second = timedelta(seconds=1)
    for _ in range(150):
        now = utc(2026, 1, 1) + timedelta(seconds=rng.randrange(365 * 86_400))
        start = next_window_start(now, windows, tz)
        # Then the next start is off-peak, and nothing between now and it is
        assert is_off_peak(start, windows, tz)
        assert start >= now
        if start > now:
            assert not is_off_peak(start - second, windows, tz)
            assert not is_off_peak(now, windows, tz)
        # And the window containing the start ends at an instant that is not off-peak
        end = window_end(start, windows, tz)
        assert end is not None and end > start
        assert is_off_peak(end - second, windows, tz)
        assert not is_off_peak(end, windows, tz)
