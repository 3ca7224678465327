"""Run work in one transaction: rerun it on lock conflicts; an unreachable database is an error."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from agentqueue.backoff import backoff_s
from agentqueue.errors import DatabaseUnavailable

T = TypeVar("T")
log = logging.getLogger(__name__)

# PostgreSQL deadlock_detected, serialization_failure and unique_violation (a concurrent
# delivery of the same job inserted its entry first): the whole transaction can be rerun.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001", "23505"})
MAX_ATTEMPTS = 5
CONFLICT_BACKOFF_S = 0.01
_SCHEMA_PROBLEMS = ("no such table", "no such column", "table ")


def _retryable(error: sa_exc.DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


def _unreachable(error: sa_exc.DBAPIError) -> bool:
    if error.connection_invalidated or isinstance(error, sa_exc.InterfaceError):
        return True
    if not isinstance(error, sa_exc.OperationalError):
        return False
    # SQLite reports a missing schema as OperationalError too: that is a bug, not an outage.
    return not str(error.orig).startswith(_SCHEMA_PROBLEMS)


def in_transaction(factory: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """Run `work(session)` inside one transaction and commit; `work` must be safe to rerun.

    Raises:
        DatabaseUnavailable: the database cannot be reached or stays locked; the caller
            retries later and must not spend anything meanwhile.
    """
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with factory() as session, session.begin():
                return work(session)
        except sa_exc.DBAPIError as error:
            if _retryable(error) and attempt < MAX_ATTEMPTS:
                log.info("transaction conflict (%s), retrying", error.orig.__class__.__name__)
                time.sleep(backoff_s(attempt + 1, base_s=CONFLICT_BACKOFF_S, jitter=True))
                continue
            if _unreachable(error):
                raise DatabaseUnavailable(
                    f"the database is unavailable ({error.orig.__class__.__name__}); "
                    "the job will be retried and nothing is spent until it is back"
                ) from error
            raise
        except sa_exc.TimeoutError as error:
            raise DatabaseUnavailable(
                "no database connection is free (pool timeout); the job will be retried"
            ) from error
    raise AssertionError("unreachable")  # pragma: no cover
