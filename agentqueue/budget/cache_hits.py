"""Cache hits in the ledger: $0 spent, the avoided cost kept, for the cache issue's statistics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from agentqueue.budget.errors import UnknownModelPrice
from agentqueue.budget.pricing import PriceBook, to_money
from agentqueue.persistence.ledger_entries import (
    EntryState,
    insert_entries,
    lock_entries,
    update_entries,
)
from agentqueue.persistence.usage_rows import write_back
from agentqueue.usage import TokenUsage


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A job answered from cache: recorded at $0 with the cost it avoided; `usage` is what
    the call would have used."""

    job_id: str
    tenant: str
    agent_type: str
    model: str
    usage: TokenUsage


def record_cache_hits_in(
    session: Session, prices: PriceBook, hits: Sequence[CacheHit], *, now: datetime, day: str
) -> None:
    """Record $0 entries with the cost each hit avoided, inside the caller's transaction; a
    live reservation is released. Idempotent: a job already settled or recorded as a hit is
    left alone."""
    entries, rows = lock_entries(session, [hit.job_id for hit in hits])
    inserts: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    done: set[str] = set()
    for hit in hits:
        entry = entries.get(hit.job_id)
        if hit.job_id in done or (
            entry is not None and entry.state in (EntryState.SETTLED, EntryState.CACHE_HIT)
        ):
            continue
        done.add(hit.job_id)
        avoided, provider = _avoided_cost(prices, hit, now)
        values = {
            "state": EntryState.CACHE_HIT.value,
            "cost_usd": Decimal(0),
            "avoided_usd": avoided,
            "input_tokens": hit.usage.input_tokens,
            "output_tokens": hit.usage.output_tokens,
            "settled_at": now,
            "updated_at": now,
        }
        if entry is None:
            inserts.append(_cache_hit_row(hit, provider, values, now, day))
            continue
        if entry.state is EntryState.RESERVED:
            for key in entry.usage_keys:
                if key in rows:
                    rows[key].unreserve(entry.reserved_usd)
        changes.append({"k_job_id": hit.job_id, **values})
    write_back(session, rows.values(), now)
    insert_entries(session, inserts)
    update_entries(session, changes)


def _avoided_cost(prices: PriceBook, hit: CacheHit, now: datetime) -> tuple[Decimal, str | None]:
    try:
        priced = prices.price(hit.model, "standard", at=now)
    except UnknownModelPrice:
        return Decimal(0), None
    usage = hit.usage
    return to_money(priced.cost(usage.input_tokens, usage.output_tokens)), priced.provider


def _cache_hit_row(
    hit: CacheHit, provider: str | None, values: dict[str, Any], now: datetime, day: str
) -> dict[str, Any]:
    return {
        "job_id": hit.job_id,
        "tenant": hit.tenant,
        "agent_type": hit.agent_type,
        "model": hit.model,
        "provider": provider,
        "service_tier": "standard",
        "reserved_usd": Decimal(0),
        "standard_cost_usd": Decimal(0),
        "input_tokens_estimate": 0,
        "max_output_tokens": 0,
        "cached_input_tokens": 0,
        "usage_keys": [],
        "day": day,
        "model_reason": None,
        "budget_action": None,
        "reserved_at": now,
        **values,
    }
