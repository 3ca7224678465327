"""Waiting for budget room that other jobs' reservations hold: who waits, for how long.

A reservation is a worst case that settlement usually shrinks, so a job that fits beside the
money already spent is not refused because of it: it waits and asks again. Waiters keep their
priority order: a job does not take room on a budget a more urgent job is waiting for.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agentqueue.constants import BUDGET_WAIT_FIRST_BACKOFF_S, BUDGET_WAIT_MAX_BACKOFF_S
from agentqueue.persistence.jobs_repository import PRIORITY_RANK
from agentqueue.persistence.usage_rows import LiveUsage


def waiting_label(row: LiveUsage) -> str:
    """How a waiting job names the budget it waits for: "<period>:<scope>"."""
    return f"{row.period}:{row.scope}"


def wait_backoff_s(waited_s: float) -> float:
    """When to ask again: soon at first, then less often, with jitter so waiters spread."""
    base = min(BUDGET_WAIT_MAX_BACKOFF_S, max(BUDGET_WAIT_FIRST_BACKOFF_S, waited_s / 8))
    return base * random.uniform(0.8, 1.2)


@dataclass
class Waiters:
    """The most urgent priority waiting on each budget ("<period>:<scope>" -> rank)."""

    most_urgent: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, waiting: Iterable[tuple[str, str]]) -> Waiters:
        waiters = cls()
        for priority, label in waiting:
            waiters.add(priority, label)
        return waiters

    def add(self, priority: str, label: str) -> None:
        rank = PRIORITY_RANK.get(priority, len(PRIORITY_RANK))
        self.most_urgent[label] = min(rank, self.most_urgent.get(label, rank))

    def ahead_of(self, priority: str, rows: Iterable[LiveUsage]) -> LiveUsage | None:
        """A budget of `rows` that a more urgent job is waiting for, if any."""
        if not self.most_urgent:
            return None
        rank = PRIORITY_RANK.get(priority, len(PRIORITY_RANK))
        for row in rows:
            if self.most_urgent.get(waiting_label(row), rank) < rank:
                return row
        return None


@dataclass(frozen=True, slots=True)
class WaitLimit:
    """How long one job may wait: `max_wait` from its first wait, never past its deadline."""

    max_wait: timedelta

    def backoff_s(
        self, *, moment: datetime, since: datetime | None, deadline: datetime | None
    ) -> float | None:
        """Seconds until the job asks again, or None when its wait is over (refuse it)."""
        started = since or moment
        if moment - started >= self.max_wait:
            return None
        backoff = wait_backoff_s((moment - started).total_seconds())
        if deadline is not None and moment + timedelta(seconds=backoff) >= deadline:
            return None
        return backoff
