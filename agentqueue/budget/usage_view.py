"""The usage rows one job is charged against, as the ladder and the hard limit see them."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from agentqueue.budget.state import utilisation_of
from agentqueue.persistence.usage_rows import LiveUsage


def utilisation(row: LiveUsage) -> Decimal:
    """Spent plus reserved as a fraction of the row's limit (0 for a scope without one)."""
    return Decimal(0) if row.limit is None else utilisation_of(row.used, row.limit)


class UsageView:
    """The usage rows of one job's scopes, locked for its admission."""

    def __init__(self, rows: Sequence[LiveUsage]) -> None:
        self.rows = rows
        self.budgeted = [row for row in rows if row.limit is not None]

    def tightest(self) -> LiveUsage | None:
        """The budgeted row with the highest utilisation (None when every scope is unlimited)."""
        return max(self.budgeted, key=utilisation, default=None)

    def utilisation(self) -> Decimal:
        tightest = self.tightest()
        return Decimal(0) if tightest is None else utilisation(tightest)

    def first_crossed(self, amount: Decimal) -> LiveUsage | None:
        """The tightest row whose limit `amount` more would cross, if any."""
        crossed = [row for row in self.budgeted if row.would_cross(amount)]
        return max(crossed, key=utilisation, default=None)

    def first_spent_out(self, amount: Decimal, refuse_at: Decimal) -> LiveUsage | None:
        """The tightest row where the money already SPENT leaves no room for `amount` (or
        reaches the refuse threshold): no settlement can make room there in this window."""
        gone = [
            row
            for row in self.budgeted
            if row.limit is not None
            and (
                row.spent + amount > row.limit or utilisation_of(row.spent, row.limit) >= refuse_at
            )
        ]
        return max(gone, key=utilisation, default=None)

    def reserve(self, amount: Decimal) -> None:
        for row in self.rows:
            row.reserve(amount)
