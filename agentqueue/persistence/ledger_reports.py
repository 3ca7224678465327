"""Read-only sums over the ledger entries, for reports (`budget history`, `stats`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from agentqueue.persistence.base import MoneyType
from agentqueue.persistence.ledger_entries import ENTRIES, EntryState, charged_apart_owner

_MONEY = MoneyType()
# Entries that are jobs: calls charged apart from a job's entry count in the spend only.
_JOBS = func.count().filter(ENTRIES.c.state != EntryState.UNKNOWN_CALLS.value)


def _money_sum(expression: Any) -> Any:
    return func.coalesce(func.sum(expression), 0).cast(_MONEY)


def spend_by_day_and_model(
    session: Session, *, since_day: str, tenant: str | None = None
) -> list[tuple[Any, ...]]:
    """Per (day, model) from `since_day` on, newest day first: day, model, jobs, cache hits,
    spent, still reserved, avoided by the cache, saved by cheaper tiers, input and output
    tokens (money sums as SQLite or PostgreSQL return them). Calls charged apart from a job's
    entry count in the spend, not as jobs."""
    state = ENTRIES.c.state
    settled = state == EntryState.SETTLED.value
    statement = (
        select(
            ENTRIES.c.day,
            ENTRIES.c.model,
            _JOBS,
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
    return [tuple(row) for row in session.execute(statement)]


def ledger_totals(session: Session, job_ids: Sequence[str] | None = None) -> tuple[Any, ...]:
    """(jobs' entries, spent, avoided by the cache, saved by cheaper tiers) over the whole
    ledger, or over the entries of `job_ids` and their charges apart only (keep a call's ids
    under ~500: two IN lists). Calls charged apart from a job's entry count in the spend, not
    as entries."""
    statement = select(
        _JOBS,
        func.coalesce(func.sum(ENTRIES.c.cost_usd), 0),
        func.coalesce(func.sum(ENTRIES.c.avoided_usd), 0),
        func.coalesce(
            func.sum(ENTRIES.c.standard_cost_usd - ENTRIES.c.cost_usd).filter(
                ENTRIES.c.state == EntryState.SETTLED.value
            ),
            0,
        ),
    )
    if job_ids is not None:
        ids = list(job_ids)
        apart = (ENTRIES.c.state == EntryState.UNKNOWN_CALLS.value) & charged_apart_owner().in_(ids)
        statement = statement.where(ENTRIES.c.job_id.in_(ids) | apart)
    return tuple(session.execute(statement).one())
