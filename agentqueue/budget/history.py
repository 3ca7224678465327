"""Spend per day and model, read from the ledger entries (for `agentqueue budget history`)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Numeric, case, func, select
from sqlalchemy.orm import Session, sessionmaker

from agentqueue.budget.ledger_entries import ENTRIES, EntryState
from agentqueue.budget.pricing import MONEY_QUANTUM
from agentqueue.money import exact_usd
from agentqueue.persistence.transactions import in_transaction

_MONEY = Numeric(28, 10)


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


def _money_sum(expression: Any) -> Any:
    return func.coalesce(func.sum(expression), 0).cast(_MONEY)


def _money(value: Any) -> Decimal:
    # SQLite sums REAL columns; round the float noise away at the ledger's precision.
    return Decimal(str(value or 0)).quantize(MONEY_QUANTUM)


def read_history(
    factory: sessionmaker[Session], *, since_day: str, tenant: str | None = None
) -> list[DayModelSpend]:
    """Per (day, model) totals from `since_day` (YYYY-MM-DD, local) on, newest day first."""
    state = ENTRIES.c.state
    settled = state == EntryState.SETTLED.value
    statement = (
        select(
            ENTRIES.c.day,
            ENTRIES.c.model,
            func.count(),
            func.sum(case((state == EntryState.CACHE_HIT.value, 1), else_=0)),
            _money_sum(ENTRIES.c.cost_usd),
            _money_sum(case((state == EntryState.RESERVED.value, ENTRIES.c.reserved_usd), else_=0)),
            _money_sum(ENTRIES.c.avoided_usd),
            _money_sum(case((settled, ENTRIES.c.standard_cost_usd - ENTRIES.c.cost_usd), else_=0)),
            func.coalesce(func.sum(ENTRIES.c.input_tokens), 0),
            func.coalesce(func.sum(ENTRIES.c.output_tokens), 0),
        )
        .where(ENTRIES.c.day >= since_day, state != EntryState.RELEASED.value)
        .group_by(ENTRIES.c.day, ENTRIES.c.model)
        .order_by(ENTRIES.c.day.desc(), ENTRIES.c.model)
    )
    if tenant is not None:
        statement = statement.where(ENTRIES.c.tenant == tenant)

    def work(session: Session) -> list[DayModelSpend]:
        spends = []
        for row in session.execute(statement):
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
