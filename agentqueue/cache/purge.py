"""Delete expired L3 rows and the bodies nothing points at (beat task `purge_expired_cache`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, and_, delete, exists, select
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from agentqueue.persistence.cache_tables import CacheBodyRecord, CacheEntryRecord

PURGE_BATCH_ROWS = 5000
# A body stored this recently may be about to gain an entry in a transaction still running.
ORPHAN_BODY_GRACE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class PurgeResult:
    entries: int
    bodies: int


def purge_expired(
    sessionmaker: sessionmaker[Session],
    *,
    now: datetime | None = None,
    batch_rows: int = PURGE_BATCH_ROWS,
) -> PurgeResult:
    """Delete expired entries, then unreferenced bodies, in short transactions of
    `batch_rows` so ledger writers are never blocked for long.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database is unreachable (the beat task retries).
    """
    now = now or datetime.now(UTC)
    entries = _delete_in_batches(
        sessionmaker,
        CacheEntryRecord.cache_key,
        CacheEntryRecord.expires_at <= now,
        batch_rows,
    )
    referenced = exists().where(CacheEntryRecord.body_hash == CacheBodyRecord.body_hash)
    bodies = _delete_in_batches(
        sessionmaker,
        CacheBodyRecord.body_hash,
        and_(CacheBodyRecord.last_stored_at <= now - ORPHAN_BODY_GRACE, ~referenced),
        batch_rows,
    )
    return PurgeResult(entries=entries, bodies=bodies)


def _delete_in_batches(
    sessionmaker: sessionmaker[Session],
    key: InstrumentedAttribute[str],
    condition: ColumnElement[bool],
    batch_rows: int,
) -> int:
    total = 0
    while True:
        with sessionmaker() as session, session.begin():
            keys = session.scalars(select(key).where(condition).limit(batch_rows)).all()
            if keys:
                # The condition again: a row refreshed since the SELECT is kept.
                result = session.execute(delete(key.class_).where(key.in_(keys), condition))
                total += cast("CursorResult[Any]", result).rowcount
        if len(keys) < batch_rows:
            return total
