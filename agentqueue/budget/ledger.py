"""The ledger service: reserve, settle and release job costs against running usage rows.

Every operation is idempotent by job id and runs in one transaction: its own, or the caller's
for `reserve_many_in` and `settle_in` (the worker's start and completion). Only scopes with a
budget keep a usage row (jobs of unbudgeted scopes share no lock). Locks are taken entries
first, then usage rows in key order (no deadlocks between workers); an entry's state is acted
on only as read under its own row lock, or the entry's primary key makes a racing duplicate
fail and rerun, so concurrent workers and redelivered copies of a job never charge it twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from agentqueue.budget.errors import UnknownModelPrice
from agentqueue.budget.possible_repeats import PossibleRepeat
from agentqueue.budget.pricing import PriceBook, to_money
from agentqueue.budget.usage_view import UsageView
from agentqueue.persistence.ledger_entries import (
    Entry,
    EntryState,
    charged_apart_key,
    encode_keys,
    insert_entries,
    lock_entries,
    read_entries,
    read_states,
    reserved_before,
    update_entries,
)
from agentqueue.persistence.ledger_guard import join_ledger_writers
from agentqueue.persistence.transactions import in_transaction
from agentqueue.persistence.usage_rows import (
    LiveUsage,
    UsageKey,
    add_to_rows,
    insert_missing,
    load_limits,
    lock_rows,
    write_back,
)
from agentqueue.usage import TokenUsage

T = TypeVar("T")
log = logging.getLogger(__name__)
SWEEP_BATCH = 500


@dataclass(frozen=True, slots=True)
class ReservationRequest:
    """A job asking to be reserved: who it charges (its usage rows) and what day it counts on."""

    job_id: str
    tenant: str
    agent_type: str
    usage_keys: tuple[UsageKey, ...]
    day: str


@dataclass(frozen=True, slots=True)
class Reservation:
    """What a job reserves: its worst-case cost on its resolved model and tier."""

    model: str
    provider: str | None
    service_tier: str
    reserved_usd: Decimal
    input_tokens_estimate: int
    max_output_tokens: int
    model_reason: str | None = None
    budget_action: str | None = None


@dataclass(slots=True)
class ReserveResult(Generic[T]):
    """Per job: an entry that already existed (not re-reserved), or the decision made now."""

    existing: dict[str, Entry] = field(default_factory=dict)
    decisions: dict[str, T] = field(default_factory=dict)
    reserved: dict[str, Reservation] = field(default_factory=dict)
    budgeted_rows: list[LiveUsage] = field(default_factory=list)


Decide = Callable[[ReservationRequest, UsageView], tuple[Reservation | None, T]]
# Called under the usage-row locks, before any decision, with the budgeted rows locked.
Observe = Callable[[Session, Sequence[LiveUsage]], None]


class Ledger:
    """Reservations, settlements, releases and cache hits in the SQL ledger."""

    def __init__(self, factory: sessionmaker[Session], prices: PriceBook) -> None:
        self.factory = factory
        self.prices = prices

    def _lock(
        self,
        session: Session,
        keys: Iterable[UsageKey],
        windows: Mapping[UsageKey, datetime],
        now: datetime,
    ) -> dict[UsageKey, LiveUsage]:
        wanted = set(keys)
        rows = lock_rows(session, wanted)
        if len(rows) < len(wanted):  # created by someone else's schema reset, or never seen
            absent = {key: windows[key] for key in wanted - rows.keys() if key in windows}
            insert_missing(session, absent, now)
            rows.update(lock_rows(session, absent))
        return rows

    def reserve_many_in(
        self,
        session: Session,
        requests: Sequence[ReservationRequest],
        windows: Mapping[UsageKey, datetime],
        decide: Decide[T],
        *,
        now: datetime,
        observe: Observe | None = None,
        known_states: Mapping[str, EntryState | None] | None = None,
    ) -> ReserveResult[T]:
        """Reserve what `decide` returns for each new job, inside the caller's transaction
        (which must be safe to rerun: a duplicate entry fails it on the primary key).
        `known_states` are entry states read earlier in this transaction (None: no entry);
        the jobs it does not name are looked up.

        `decide` sees the job's live usage (including reservations made earlier in this
        batch) and returns the reservation to make (or None) plus its own verdict. Jobs with a
        reserved, settled or cache-hit entry are returned in `existing` and not decided again;
        a released job is reserved afresh. Requests are decided in the order given.
        """
        scopes = {key[0] for request in requests for key in request.usage_keys}
        result: ReserveResult[T] = ReserveResult()
        join_ledger_writers(session)  # before reading budgets: see ledger_guard
        limits = load_limits(session, scopes)
        # Only scopes with a budget keep usage rows; the others lock nothing shared.
        budgeted = {key: end for key, end in windows.items() if key[:2] in limits}
        # Read before locking to keep the lock short: a duplicate inserted meanwhile makes
        # our insert fail on the primary key and the whole transaction is rerun.
        known = known_states or {}
        states = {job_id: state for job_id, state in known.items() if state is not None}
        states.update(read_states(session, (r.job_id for r in requests if r.job_id not in known)))
        released = [job_id for job_id, state in states.items() if state is EntryState.RELEASED]
        if released:  # a concurrent delivery may have re-reserved it: look again, locked
            states.update(read_states(session, released, lock=True))
        # Entries before usage rows, as everywhere, so two ledger writers never deadlock.
        rows = self._lock(session, budgeted.keys(), budgeted, now)
        for row in rows.values():
            row.limit = limits.get((row.scope, row.period))
        if observe is not None:
            observe(session, [row for row in rows.values() if row.limit is not None])
        live = [job_id for job_id, state in states.items() if state is not EntryState.RELEASED]
        result.existing = read_entries(session, live, lock=False)
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for request in requests:
            if request.job_id in result.decisions or request.job_id in result.existing:
                continue  # already reserved or done, or the same job twice in one batch
            view = UsageView([rows[key] for key in request.usage_keys if key in rows])
            reservation, verdict = decide(request, view)
            result.decisions[request.job_id] = verdict
            if reservation is None:
                continue
            view.reserve(reservation.reserved_usd)
            result.reserved[request.job_id] = reservation
            values = self._entry_values(request, reservation, now)
            if request.job_id not in states:
                inserts.append(values)
            else:  # released earlier (failed or swept): reserve the same row again
                values["k_job_id"] = values.pop("job_id")
                updates.append(values)
        write_back(session, rows.values(), now)
        insert_entries(session, inserts)
        if updates:
            update_entries(session, updates)
        result.budgeted_rows = [row for row in rows.values() if row.limit is not None]
        return result

    @staticmethod
    def _entry_values(
        request: ReservationRequest, reservation: Reservation, now: datetime
    ) -> dict[str, Any]:
        return {
            "job_id": request.job_id,
            "state": EntryState.RESERVED.value,
            "tenant": request.tenant,
            "agent_type": request.agent_type,
            "model": reservation.model,
            "provider": reservation.provider,
            "service_tier": reservation.service_tier,
            "reserved_usd": reservation.reserved_usd,
            "cost_usd": Decimal(0),
            "standard_cost_usd": Decimal(0),
            "avoided_usd": Decimal(0),
            "input_tokens_estimate": reservation.input_tokens_estimate,
            "max_output_tokens": reservation.max_output_tokens,
            "input_tokens": 0,
            "output_tokens": 0,
            "cached_input_tokens": 0,
            "usage_keys": encode_keys(request.usage_keys),
            "day": request.day,
            "model_reason": reservation.model_reason,
            "budget_action": reservation.budget_action,
            "reserved_at": now,
            "settled_at": None,
            "updated_at": now,
        }

    def _actual_cost(self, entry: Entry, usage: TokenUsage) -> tuple[Decimal, Decimal]:
        """(cost on the entry's tier, cost on the standard tier) of the reported usage."""
        tokens = (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens)
        try:
            priced = self.prices.price(
                entry.model, entry.service_tier, provider=entry.provider, at=entry.reserved_at
            )
            standard = self.prices.price(
                entry.model, "standard", provider=entry.provider, at=entry.reserved_at
            )
        except UnknownModelPrice:
            # The price vanished since reserving (file edited): charge the reservation, not $0.
            log.error("no price for %s at settlement of job %s", entry.model, entry.job_id)
            return entry.reserved_usd, entry.reserved_usd
        return to_money(priced.cost(*tokens)), to_money(standard.cost(*tokens))

    def settle_in(
        self,
        session: Session,
        *,
        usages: Mapping[str, TokenUsage],
        now: datetime,
        possible_repeats: Mapping[str, PossibleRepeat] | None = None,
    ) -> dict[str, Decimal]:
        """Charge each job (job id -> reported usage) its actual cost and drop its
        reservation, inside the caller's transaction (so the caller can add its own writes,
        such as the jobs' final records, atomically); returns job id -> cost.

        A settled job returns its recorded cost again; a released one (swept while it was
        still running) is charged now, since the provider did the work. Unknown ids are
        skipped with a warning. A job in `possible_repeats` made calls that may have been paid
        without their answer being kept (an earlier attempt that died, requests that failed in
        transit): each is charged at the job's reservation (its last, if released since) on
        top, and the entry says why (never released silently). Calls made at a model the job
        left for a fallback were charged when it left (see `release_moving`), not here.
        """
        possible_repeats = possible_repeats or {}
        # On PostgreSQL the usage rows are changed by increments at the end, so they stay
        # locked only from that statement to the commit (other workers' admissions wait on
        # them); elsewhere they are locked with the entries and written back.
        increments = session.get_bind().dialect.name == "postgresql"
        rows: dict[UsageKey, LiveUsage] = {}
        if increments:
            entries = read_entries(session, list(usages), lock=True)  # joins the ledger writers
        else:
            entries, rows = lock_entries(session, list(usages))
        deltas: dict[UsageKey, tuple[Decimal, Decimal]] = {}
        costs: dict[str, Decimal] = {}
        changes: list[dict[str, Any]] = []
        for job_id, usage in usages.items():
            entry = entries.get(job_id)
            if entry is None:
                log.warning("settlement for job %s without a reservation", job_id)
                continue
            if entry.state in (EntryState.SETTLED, EntryState.CACHE_HIT):
                costs[job_id] = entry.cost_usd
                continue
            cost, standard_cost = self._actual_cost(entry, usage)
            repeat, reason = Decimal(0), None
            unknown = possible_repeats.get(job_id)
            if unknown is not None and unknown.calls:
                # At the reservation the calls were made under, even if it was released since
                # (swept while the job ran).
                repeat, reason = entry.reserved_usd * unknown.calls, unknown.reason
                cost, standard_cost = cost + repeat, standard_cost + repeat
            unreserved = entry.reserved_usd if entry.state is EntryState.RESERVED else Decimal(0)
            for key in entry.usage_keys:
                if increments:
                    spent_so_far, unreserved_so_far = deltas.get(key, (Decimal(0), Decimal(0)))
                    deltas[key] = (spent_so_far + cost, unreserved_so_far + unreserved)
                    continue
                row = rows.get(key)
                if row is None:
                    continue
                if unreserved:
                    row.unreserve(unreserved)
                row.spend(cost)
            costs[job_id] = cost
            changes.append(
                {
                    "k_job_id": job_id,
                    "state": EntryState.SETTLED.value,
                    "cost_usd": cost,
                    "standard_cost_usd": standard_cost,
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "cached_input_tokens": usage.cached_input_tokens,
                    "possible_repeat_usd": repeat,
                    "charge_reason": reason if repeat else None,
                    "settled_at": now,
                    "updated_at": now,
                }
            )
        update_entries(session, changes)
        if increments:
            # Only budgeted scopes keep usage rows, so only their keys are changed. The entries'
            # read above joined the ledger writers: a budget set since waits for this commit,
            # and one set before is read here (see ledger_guard).
            limits = load_limits(session, {key[0] for key in deltas})
            add_to_rows(session, {k: d for k, d in deltas.items() if k[:2] in limits}, now)
        else:
            write_back(session, rows.values(), now)
        return costs

    def release_many(
        self, job_ids: Sequence[str], *, now: datetime, reserved_before: datetime | None = None
    ) -> list[str]:
        """Drop the reservations of these jobs (failed, or stale when `reserved_before` is set).

        Returns the ids actually released; anything not currently reserved is left alone.
        """

        return in_transaction(
            self.factory,
            partial(self.release_in, job_ids=job_ids, now=now, reserved_before=reserved_before),
        )

    def release_moving(
        self, charged_apart: Mapping[str, PossibleRepeat], *, now: datetime
    ) -> dict[str, Decimal]:
        """Drop the reservations of jobs moving to a fallback model (their entries will be
        reserved again at that model), charging each job's calls of unknown outcome (job id ->
        calls) at the reservation they were made under, on a ledger row of their own
        (`EntryState.UNKNOWN_CALLS`) in that reservation's day, window and usage rows.

        Returns job id -> amount charged. Only what this call releases is charged: a rerun
        charges nothing more.
        """

        def work(session: Session) -> dict[str, Decimal]:
            return self._release(session, list(charged_apart), now, None, charged_apart)[1]

        return in_transaction(self.factory, work)

    def release_in(
        self,
        session: Session,
        *,
        job_ids: Sequence[str],
        now: datetime,
        reserved_before: datetime | None = None,
    ) -> list[str]:
        """`release_many` inside the caller's transaction."""
        return self._release(session, job_ids, now, reserved_before, {})[0]

    def _release(
        self,
        session: Session,
        job_ids: Sequence[str],
        now: datetime,
        reserved_before: datetime | None,
        charged_apart: Mapping[str, PossibleRepeat],
    ) -> tuple[list[str], dict[str, Decimal]]:
        entries, rows = lock_entries(session, job_ids)
        released = []
        for entry in entries.values():
            if entry.state is not EntryState.RESERVED:
                continue
            if reserved_before is not None and entry.reserved_at >= reserved_before:
                continue  # reserved again since the sweep looked: it is live
            for key in entry.usage_keys:
                if key in rows:
                    rows[key].unreserve(entry.reserved_usd)
            released.append(entry.job_id)
        charged: dict[str, Decimal] = {}
        charge_rows = []
        for job_id in released:
            unknown = charged_apart.get(job_id)
            if unknown is None or not unknown.calls:
                continue
            moving = entries[job_id]
            charged[job_id] = charge = moving.reserved_usd * unknown.calls
            for key in moving.usage_keys:
                if key in rows:
                    rows[key].spend(charge)
            charge_rows.append(_charge_row(moving, charge, unknown.reason, now))
        write_back(session, rows.values(), now)
        insert_entries(session, charge_rows)
        update_entries(
            session,
            [
                {"k_job_id": job_id, "state": EntryState.RELEASED.value, "updated_at": now}
                for job_id in released
            ],
        )
        return released, charged

    def sweep_stale(self, *, older_than: timedelta, now: datetime | None = None) -> int:
        """Release reservations older than `older_than` whose job is over (or unknown): a
        failed job whose release did not get through. A job still owed a run keeps its
        reservation: its next attempt settles it, at worst as a possibly repeated call."""
        moment = now or datetime.now(UTC)
        cutoff = moment - older_than
        total = 0
        while True:
            stale = in_transaction(
                self.factory, partial(reserved_before, cutoff=cutoff, limit=SWEEP_BATCH)
            )
            if not stale:
                return total
            released = self.release_many(stale, now=moment, reserved_before=cutoff)
            total += len(released)
            if len(stale) < SWEEP_BATCH or not released:
                return total


def _charge_row(entry: Entry, charge: Decimal, reason: str, now: datetime) -> dict[str, Any]:
    """A row of its own for calls of unknown outcome charged apart from `entry`: the job's
    tenant, agent type and model, in the day and window of that reservation."""
    return {
        "job_id": charged_apart_key(entry.job_id),
        "state": EntryState.UNKNOWN_CALLS.value,
        "tenant": entry.tenant,
        "agent_type": entry.agent_type,
        "model": entry.model,
        "provider": entry.provider,
        "service_tier": entry.service_tier,
        "reserved_usd": Decimal(0),
        "cost_usd": charge,
        "standard_cost_usd": charge,
        "avoided_usd": Decimal(0),
        "input_tokens_estimate": 0,
        "max_output_tokens": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "cached_input_tokens": 0,
        "usage_keys": encode_keys(entry.usage_keys),
        "day": entry.day,
        "model_reason": None,
        "budget_action": None,
        "possible_repeat_usd": charge,
        "charge_reason": reason,
        "reserved_at": entry.reserved_at,
        "settled_at": now,
        "updated_at": now,
    }
