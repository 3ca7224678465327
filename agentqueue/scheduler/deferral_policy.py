"""Whether a job runs now or waits, and until when: the pure rule behind deferral.

- `critical` is never deferred.
- `low` submitted outside the off-peak windows waits for the next window start.
- Any other priority waits for the next window start when the budget ladder says defer
  (if it is off-peak already, it runs now: off-peak is where deferred work goes anyway).
- A job with a deadline is never held past `deadline - expected_run_s`; when that moment
  is now or already past, the job runs now.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, tzinfo

from agentqueue.jobs import Priority
from agentqueue.scheduler.windows import OffPeakWindow, is_off_peak, next_window_start


def release_time_for(
    job_priority: Priority | str,
    deadline: datetime | None,
    expected_run_s: float,
    now: datetime,
    windows: Iterable[OffPeakWindow],
    tz: tzinfo,
    budget_says_defer: bool,
) -> datetime | None:
    """When a job submitted at `now` should be released, in UTC; None means run it now.

    `deadline` and `now` must be timezone-aware.
    """
    priority = Priority(job_priority)
    if priority is Priority.CRITICAL:
        return None
    windows = tuple(windows)
    wants_off_peak = budget_says_defer or (
        priority is Priority.LOW and not is_off_peak(now, windows, tz)
    )
    if not wants_off_peak:
        return None
    release = next_window_start(now, windows, tz)
    if deadline is not None:
        if deadline.utcoffset() is None:
            raise ValueError("deadline must be a timezone-aware datetime")
        latest_start = deadline.astimezone(UTC) - timedelta(seconds=max(0.0, expected_run_s))
        release = min(release, latest_start)
    return release if release > now else None
