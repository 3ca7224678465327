"""How full a budget is right now: one scope, one period, the current window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from agentqueue.money import exact_usd

FULL = Decimal(1)


def utilisation_of(used_usd: Decimal, limit_usd: Decimal) -> Decimal:
    """Spent plus reserved as a fraction of the limit; a zero limit counts as full."""
    if limit_usd <= 0:
        return FULL if used_usd <= 0 else FULL + used_usd
    return used_usd / limit_usd


@dataclass(frozen=True, slots=True)
class BudgetState:
    """A budget in its current window, for `agentqueue budget show` and the scheduler."""

    scope: str
    period: str
    window_start: datetime
    window_end: datetime
    window_label: str
    spent_usd: Decimal
    reserved_usd: Decimal
    limit_usd: Decimal
    utilisation: Decimal
    action: str

    @property
    def remaining_usd(self) -> Decimal:
        return max(self.limit_usd - self.spent_usd - self.reserved_usd, Decimal(0))

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe: money as strings (never floats), times as ISO 8601."""
        return {
            "scope": self.scope,
            "period": self.period,
            "window": self.window_label,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "spent_usd": exact_usd(self.spent_usd),
            "reserved_usd": exact_usd(self.reserved_usd),
            "limit_usd": exact_usd(self.limit_usd),
            "remaining_usd": exact_usd(self.remaining_usd),
            "utilisation": str(self.utilisation.quantize(Decimal("0.0001"))),
            "action": self.action,
        }
