"""L3: the SQL database of the ledger; entries point at bodies stored once per content hash.

Lookups run one plain SELECT on a pooled DBAPI connection: no ORM, no transaction (on SQLite
the engine's `BEGIN IMMEDIATE` would make every cache read queue behind ledger writes).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Delete, Engine, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from agentqueue.cache.base import InvalidationTarget, StoredEntry, TierHit
from agentqueue.cache.degrade import TierGuard
from agentqueue.cache.entry import CacheEntry, TokenUsage
from agentqueue.cache.stats import CacheStats
from agentqueue.persistence.cache_tables import CacheBodyRecord, CacheEntryRecord

MAX_KEYS_PER_QUERY = 500
_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


@lru_cache(maxsize=128)
def _select_sql(placeholder: str, count: int) -> str:
    entries, bodies = CacheEntryRecord.__tablename__, CacheBodyRecord.__tablename__
    return (
        "SELECT e.cache_key, e.response_model, e.provider, e.input_tokens, e.output_tokens, "
        "e.cached_input_tokens, e.finish_reason, e.created_at, e.expires_at, b.body "
        f"FROM {entries} e JOIN {bodies} b ON b.body_hash = e.body_hash "
        f"WHERE e.cache_key IN ({', '.join([placeholder] * count)})"
    )


def body_hash(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


class L3SqlCache:
    """SQL tier. Never raises: an unreachable database reads as misses and counts errors."""

    name = "l3"

    def __init__(
        self,
        sessionmaker: sessionmaker[Session],
        *,
        guard: TierGuard,
        stats: CacheStats,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessionmaker = sessionmaker
        engine = sessionmaker.kw["bind"]
        if not isinstance(engine, Engine):
            raise TypeError("the L3 cache needs a sessionmaker bound to an Engine")
        self._engine = engine
        dialect = engine.dialect
        if dialect.name not in ("sqlite", "postgresql") or dialect.paramstyle not in _PLACEHOLDERS:
            raise NotImplementedError(f"the L3 cache supports SQLite and PostgreSQL, not {dialect}")
        self._placeholder = _PLACEHOLDERS[dialect.paramstyle]
        self._select_one = _select_sql(self._placeholder, 1)
        self._insert = sqlite.insert if dialect.name == "sqlite" else postgresql.insert
        self._guard = guard
        self._stats = stats
        self._clock = clock

    def get_many(self, keys: Sequence[str]) -> list[TierHit | None]:
        if not keys:
            return []
        if not self._guard.available():
            return [None] * len(keys)
        unique = list(dict.fromkeys(keys)) if len(keys) > 1 else keys
        try:
            connection = self._engine.raw_connection()
            try:
                cursor = connection.cursor()
                if len(unique) == 1:
                    cursor.execute(self._select_one, unique)
                    rows = cursor.fetchall()
                else:
                    rows = []
                    for start in range(0, len(unique), MAX_KEYS_PER_QUERY):
                        chunk = unique[start : start + MAX_KEYS_PER_QUERY]
                        cursor.execute(_select_sql(self._placeholder, len(chunk)), chunk)
                        rows.extend(cursor.fetchall())
                cursor.close()
            finally:
                connection.close()  # back to the pool, which rolls back any implicit transaction
        except Exception as exc:  # degrade, never fail
            self._guard.failed("lookup", exc)
            return [None] * len(keys)
        now = self._clock()
        found: dict[str, TierHit] = {}
        for (
            key,
            model,
            provider,
            tokens_in,
            tokens_out,
            cached,
            finish,
            created,
            expires,
            body,
        ) in rows:
            expires_at = _utc(expires).timestamp()
            if expires_at > now:
                entry = CacheEntry(
                    body,
                    model,
                    provider,
                    TokenUsage(tokens_in, tokens_out, cached),
                    finish,
                    _utc(created),
                )
                found[key] = TierHit(expires_at, None, entry)
        return [found.get(key) for key in keys]

    def put_many(self, items: Sequence[StoredEntry]) -> None:
        """One transaction: upsert bodies (a duplicate only refreshes `last_stored_at`), then
        upsert entries pointing at them."""
        if not items or not self._guard.available():
            return
        try:
            self._upsert(items)
        except Exception as exc:  # degrade, never fail
            self._guard.failed("store", exc)

    def _upsert(self, items: Sequence[StoredEntry]) -> None:
        now = datetime.now(UTC)
        bodies: dict[str, dict[str, Any]] = {}
        entries: dict[str, dict[str, Any]] = {}
        for item in items:
            entry = item.entry if item.entry is not None else CacheEntry.from_json(item.payload)
            digest = body_hash(entry.output)
            bodies[digest] = {
                "body_hash": digest,
                "body": entry.output,
                "size_bytes": len(entry.output.encode()),
                "created_at": now,
                "last_stored_at": now,
            }
            entries[item.key] = {
                "cache_key": item.key,
                "tenant": item.tags.tenant,
                "agent_type": item.tags.agent_type,
                "model": item.tags.model,
                "policy": item.policy,
                "provider": entry.provider,
                "response_model": entry.model,
                "body_hash": digest,
                "input_tokens": entry.usage.input_tokens,
                "output_tokens": entry.usage.output_tokens,
                "cached_input_tokens": entry.usage.cached_input_tokens,
                "finish_reason": entry.finish_reason,
                "created_at": entry.created_at,
                "expires_at": datetime.fromtimestamp(item.expires_at, UTC),
            }
        body_insert = self._insert(CacheBodyRecord)
        body_upsert = body_insert.on_conflict_do_update(
            index_elements=["body_hash"],
            set_={"last_stored_at": body_insert.excluded.last_stored_at},
        )
        entry_insert = self._insert(CacheEntryRecord)
        entry_upsert = entry_insert.on_conflict_do_update(
            index_elements=["cache_key"],
            set_={
                name: entry_insert.excluded[name]
                for name in next(iter(entries.values()))
                if name != "cache_key"
            },
        )
        with self._sessionmaker() as session, session.begin():
            session.execute(body_upsert, sorted(bodies.values(), key=_by_hash))
            session.execute(entry_upsert, sorted(entries.values(), key=_by_key))
        self._stats.add_many(
            "l3",
            {
                "stores": len(entries),
                "bytes_written": sum(b["size_bytes"] for b in bodies.values()),
            },
        )

    def invalidate(self, target: InvalidationTarget) -> set[str]:
        if not self._guard.available():
            return set()
        statement: Delete = delete(CacheEntryRecord)
        if target.by_tags:
            for column in ("tenant", "agent_type", "model"):
                value = getattr(target, column)
                if value is not None:
                    statement = statement.where(getattr(CacheEntryRecord, column) == value)
        else:
            statement = statement.where(CacheEntryRecord.cache_key.in_(target.keys))
        try:
            with self._sessionmaker() as session, session.begin():
                removed = session.scalars(statement.returning(CacheEntryRecord.cache_key)).all()
        except Exception as exc:  # degrade, never fail
            self._guard.failed("invalidate", exc)
            return set()
        return set(removed)

    def usage(self) -> dict[str, int]:
        """Rows and distinct body bytes held now (for `stats`; a count, so not on hot paths)."""
        if not self._guard.available():
            return {}
        try:
            with self._sessionmaker() as session:
                entries = session.scalar(select(func.count()).select_from(CacheEntryRecord))
                bodies, size = session.execute(
                    select(func.count(), func.coalesce(func.sum(CacheBodyRecord.size_bytes), 0))
                ).one()
        except Exception as exc:  # degrade, never fail
            self._guard.failed("usage", exc)
            return {}
        return {"entries": int(entries or 0), "bodies": int(bodies), "bytes": int(size)}


def _utc(value: datetime | str) -> datetime:
    """Raw DBAPI values: SQLite gives naive UTC text (as `UTCDateTime` wrote it), PostgreSQL
    aware datetimes."""
    if isinstance(value, str):
        # Appending the offset is several times faster than `.replace(tzinfo=UTC)`.
        return datetime.fromisoformat(f"{value}+00:00")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _by_hash(row: dict[str, Any]) -> str:
    # A fixed order keeps concurrent upserts from deadlocking each other on PostgreSQL.
    return str(row["body_hash"])


def _by_key(row: dict[str, Any]) -> str:
    return str(row["cache_key"])
