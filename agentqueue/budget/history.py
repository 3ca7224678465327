"""Spend per day and model, read from the ledger entries (for `agentqueue budget history`)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from agentqueue.money import MONEY_QUANTUM, exact_usd
from agentqueue.persistence.ledger_reports import spend_by_day_and_model
from agentqueue.persistence.transactions import in_transaction


@dataclass(frozen=True, slots=True)
class DayModelSpend:
    """What one model cost on one (local) day."""

    day: str
    model: str
    jobs: int
    cache_hits: int
    spent_usd: Decimal
    reserved_usd: Decimal  # still open reservations
    avoided_usd: Decimal  # cost the cache saved
    tier_savings_usd: Decimal  # standard price minus what flex/batch actually cost
    input_tokens: int
    output_tokens: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "model": self.model,
            "jobs": self.jobs,
            "cache_hits": self.cache_hits,
            "spent_usd": exact_usd(self.spent_usd),
            "reserved_usd": exact_usd(self.reserved_usd),
            "avoided_usd": exact_usd(self.avoided_usd),
            "tier_savings_usd": exact_usd(self.tier_savings_usd),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }


def _money(value: Any) -> Decimal:
    # Sums come back with the column's scale, or as 0 where nothing matched.
    return Decimal(str(value or 0)).quantize(MONEY_QUANTUM)


def read_history(
    factory: sessionmaker[Session], *, since_day: str, tenant: str | None = None
) -> list[DayModelSpend]:
    """Per (day, model) totals from `since_day` (YYYY-MM-DD, local) on, newest day first."""

    def work(session: Session) -> list[DayModelSpend]:
        spends = []
        for row in spend_by_day_and_model(session, since_day=since_day, tenant=tenant):
            day, model, jobs, hits, spent, reserved, avoided, savings, tokens_in, tokens_out = row
            spends.append(
                DayModelSpend(
                    day=day,
                    model=model,
                    jobs=int(jobs),
                    cache_hits=int(hits or 0),
                    spent_usd=_money(spent),
                    reserved_usd=_money(reserved),
                    avoided_usd=_money(avoided),
                    tier_savings_usd=_money(savings),
                    input_tokens=int(tokens_in),
                    output_tokens=int(tokens_out),
                )
            )
        return spends

    return in_transaction(factory, work)
