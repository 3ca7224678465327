"""Ledger entry rows: one per job, read and written in bulk by the ledger service."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Table, Update, bindparam, func, select, update
from sqlalchemy.orm import Session

from agentqueue.persistence.job_table import JobRecord
from agentqueue.persistence.ledger_guard import joined
from agentqueue.persistence.ledger_tables import LedgerEntryRecord
from agentqueue.persistence.one_of import one_of
from agentqueue.persistence.usage_rows import (
    LiveUsage,
    UsageKey,
    key_from_json,
    key_to_json,
    lock_rows,
)

ENTRIES: Table = LedgerEntryRecord.__table__  # type: ignore[assignment]
JOBS: Table = JobRecord.__table__  # type: ignore[assignment]
# A batched job waits in a provider batch: its reservation is held until settled.
UNFINISHED = ("queued", "running", "deferred", "batched")


class EntryState(StrEnum):
    RESERVED = "reserved"
    SETTLED = "settled"
    RELEASED = "released"
    CACHE_HIT = "cache_hit"
    # Calls of unknown outcome charged on a row of their own, not a job's entry: made at a model
    # the job left for a fallback, charged as its reservation there was released (the job's own
    # entry is reserved again at the fallback). Its id is `charged_apart_key(<job id>)`.
    UNKNOWN_CALLS = "unknown_calls"


_APART_MARK = ":unknown-calls:"
_APART_SUFFIX = 12  # hex digits: one row per charge


def charged_apart_key(job_id: str) -> str:
    """The entry id of a charge apart from `job_id`'s entry: `<job id>:unknown-calls:<hex>`."""
    return f"{job_id}{_APART_MARK}{uuid.uuid4().hex[:_APART_SUFFIX]}"


def charged_apart_owner() -> ColumnElement[str]:
    """SQL: the job id a charge apart was made for, read back from its entry id."""
    tail = len(_APART_MARK) + _APART_SUFFIX
    return func.substr(ENTRIES.c.job_id, 1, func.length(ENTRIES.c.job_id) - tail)


@dataclass(frozen=True, slots=True)
class Entry:
    """A ledger row as read back."""

    job_id: str
    state: EntryState
    tenant: str
    agent_type: str
    model: str
    provider: str | None
    service_tier: str
    reserved_usd: Decimal
    cost_usd: Decimal
    input_tokens_estimate: int
    max_output_tokens: int
    model_reason: str | None
    budget_action: str | None
    usage_keys: tuple[UsageKey, ...]
    day: str
    reserved_at: datetime


_ENTRY_COLUMNS = (
    ENTRIES.c.job_id,
    ENTRIES.c.state,
    ENTRIES.c.tenant,
    ENTRIES.c.agent_type,
    ENTRIES.c.model,
    ENTRIES.c.provider,
    ENTRIES.c.service_tier,
    ENTRIES.c.reserved_usd,
    ENTRIES.c.cost_usd,
    ENTRIES.c.input_tokens_estimate,
    ENTRIES.c.max_output_tokens,
    ENTRIES.c.model_reason,
    ENTRIES.c.budget_action,
    ENTRIES.c.usage_keys,
    ENTRIES.c.day,
    ENTRIES.c.reserved_at,
)


def decode_keys(value: Sequence[Sequence[str]] | None) -> tuple[UsageKey, ...]:
    encoded = tuple(tuple(key) for key in value or ())
    keys = _DECODED_KEYS.get(encoded)
    if keys is None:
        # Thousands of jobs share a handful of key sets: parse each set's dates once.
        keys = tuple(key_from_json(key) for key in encoded)
        if len(_DECODED_KEYS) > 10_000:
            _DECODED_KEYS.clear()
        _DECODED_KEYS[encoded] = keys
    return keys


_DECODED_KEYS: dict[tuple[tuple[str, ...], ...], tuple[UsageKey, ...]] = {}


def encode_keys(keys: tuple[UsageKey, ...]) -> tuple[tuple[str, ...], ...]:
    """`keys` as an entry stores them (JSON arrays), the inverse of `decode_keys`; each key set
    is encoded once, as it is decoded once."""
    encoded = _ENCODED_KEYS.get(keys)
    if encoded is None:
        encoded = tuple(tuple(key_to_json(key)) for key in keys)
        if len(_ENCODED_KEYS) > 10_000:
            _ENCODED_KEYS.clear()
        _ENCODED_KEYS[keys] = encoded
    return encoded


_ENCODED_KEYS: dict[tuple[UsageKey, ...], tuple[tuple[str, ...], ...]] = {}


def read_entries(session: Session, job_ids: Iterable[str], *, lock: bool) -> dict[str, Entry]:
    """The entries of these jobs; `lock`: locked for this transaction, which writes the ledger
    (it joins the ledger writers, see `ledger_guard`, by this statement if not yet)."""
    wanted = sorted(set(job_ids))
    if not wanted:
        return {}
    params = {"entry_ids": wanted}
    entries = {}
    for row in joined(session, _LOCK, params) if lock else session.execute(_READ, params):
        entries[row.job_id] = Entry(
            job_id=row.job_id,
            state=EntryState(row.state),
            tenant=row.tenant,
            agent_type=row.agent_type,
            model=row.model,
            provider=row.provider,
            service_tier=row.service_tier,
            reserved_usd=row.reserved_usd,
            cost_usd=row.cost_usd,
            input_tokens_estimate=row.input_tokens_estimate,
            max_output_tokens=row.max_output_tokens,
            model_reason=row.model_reason,
            budget_action=row.budget_action,
            usage_keys=decode_keys(row.usage_keys),
            day=row.day,
            reserved_at=row.reserved_at,
        )
    return entries


_READ = select(*_ENTRY_COLUMNS).where(one_of(ENTRIES.c.job_id, "entry_ids"))
_LOCK = _READ.order_by(ENTRIES.c.job_id).with_for_update()


def read_states(
    session: Session, job_ids: Iterable[str], *, lock: bool = False
) -> dict[str, EntryState]:
    """Just the state of each existing entry: the common answer is "none yet"."""
    wanted = sorted(set(job_ids))
    if not wanted:
        return {}
    statement = _LOCK_STATES if lock else _READ_STATES
    rows = session.execute(statement, {"entry_ids": wanted})
    return {job_id: EntryState(state) for job_id, state in rows}


_READ_STATES = select(ENTRIES.c.job_id, ENTRIES.c.state).where(
    one_of(ENTRIES.c.job_id, "entry_ids")
)
_LOCK_STATES = _READ_STATES.order_by(ENTRIES.c.job_id).with_for_update()


def insert_entries(session: Session, rows: list[dict[str, Any]]) -> None:
    """New entries, one dict of column values each (one executemany)."""
    if rows:
        session.connection().execute(_INSERT, rows)


_INSERT = ENTRIES.insert()


def reserved_before(session: Session, cutoff: datetime, *, limit: int) -> list[str]:
    """Ids of entries still reserved since before `cutoff`, oldest first, whose job is over
    or unknown (a job still queued, running or deferred keeps its reservation: its next
    attempt settles it)."""
    unfinished = (
        select(JOBS.c.id)
        .where(JOBS.c.id == ENTRIES.c.job_id, JOBS.c.status.in_(UNFINISHED))
        .exists()
    )
    statement = (
        select(ENTRIES.c.job_id)
        .where(
            ENTRIES.c.state == EntryState.RESERVED.value,
            ENTRIES.c.reserved_at < cutoff,
            ~unfinished,
        )
        .order_by(ENTRIES.c.reserved_at)
        .limit(limit)
    )
    return list(session.scalars(statement))


def update_entries(session: Session, changes: list[dict[str, Any]]) -> None:
    """Apply per-job column changes; every dict has `k_job_id` and the same other keys."""
    by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for change in changes:
        by_shape.setdefault(tuple(sorted(change)), []).append(change)
    for shape, rows in by_shape.items():
        statement = _UPDATES.get(shape)
        if statement is None:  # the shapes are the ledger's own few, each built once
            columns: dict[str, Any] = {n: bindparam(n) for n in shape if n != "k_job_id"}
            statement = _UPDATES[shape] = (
                update(ENTRIES).where(ENTRIES.c.job_id == bindparam("k_job_id")).values(columns)
            )
        session.connection().execute(statement, rows)


_UPDATES: dict[tuple[str, ...], Update] = {}


def lock_entries(
    session: Session, job_ids: Sequence[str]
) -> tuple[dict[str, Entry], dict[UsageKey, LiveUsage]]:
    """Lock these jobs' entries, then the usage rows they count against (key order; only
    budgeted scopes have rows): what is read here cannot change before commit.
    """
    entries = read_entries(session, job_ids, lock=True)  # joins the ledger writers
    rows = lock_rows(session, {key for e in entries.values() for key in e.usage_keys})
    return entries, rows
