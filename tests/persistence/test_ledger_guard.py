"""On PostgreSQL a ledger-writing transaction holds the writers' lock from its first ledger
statement on, whether that statement is `LOCK TABLE` or the claim or the locked entry read that
carries the lock in its `WITH` (and then no `LOCK TABLE` is sent): a budget's backfill, which
takes `SHARE`, cannot slip in between."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from agentqueue.jobs import JobStatus, parse_job, utcnow
from agentqueue.persistence import jobs_repository
from agentqueue.persistence.engine import get_sessionmaker
from agentqueue.persistence.ledger_entries import read_entries
from agentqueue.persistence.ledger_guard import join_ledger_writers
from tests.support.pipeline import simple_job


def backfill_could_start(url: str) -> bool:
    """Whether another connection could take `SHARE` on the entries now (without waiting)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection, connection.begin():
            connection.execute(text("LOCK TABLE ledger_entries IN SHARE MODE NOWAIT"))
        return True
    except OperationalError as error:
        assert getattr(error.orig, "sqlstate", None) == "55P03"  # lock_not_available
        return False
    finally:
        engine.dispose()


def claim_as_ledger_writer(session: Session) -> None:
    jobs_repository.claim(session, ["job-1"], now=utcnow(), ledger_writer=True)


def claim_only(session: Session) -> None:
    jobs_repository.claim(session, ["job-1"], now=utcnow())


def locked_entries(session: Session) -> None:
    read_entries(session, ["job-1"], lock=True)


def unlocked_entries(session: Session) -> None:
    read_entries(session, ["job-1"], lock=False)


@pytest.mark.parametrize(
    ("first", "holds"),
    [
        (claim_as_ledger_writer, True),
        (locked_entries, True),
        (claim_only, False),
        (unlocked_entries, False),
    ],
)
def test_the_first_ledger_statement_takes_the_writers_lock_without_a_lock_statement(
    postgres_url: str, first: Callable[[Session], None], holds: bool
) -> None:
    """Given a queued job, when a transaction's first statement is the claim of a ledger
    writer (or a locked read of entries), then a backfill cannot start until it commits, and
    joining the writers afterwards sends nothing; a plain claim or read holds nothing."""
    sessions = get_sessionmaker(postgres_url)
    job = parse_job(simple_job(1, id="job-1"), max_bytes=1 << 20)
    with sessions.begin() as session:
        jobs_repository.insert_new(session, [job], status=JobStatus.QUEUED, now=utcnow())
    sent: list[str] = []

    def on_statement(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    engine = sessions.kw["bind"]
    with sessions.begin() as session:
        first(session)
        assert backfill_could_start(postgres_url) is not holds
        event.listen(engine, "before_cursor_execute", on_statement)
        try:
            join_ledger_writers(session)
        finally:
            event.remove(engine, "before_cursor_execute", on_statement)
        assert [s for s in sent if s.startswith("LOCK TABLE")] == ([] if holds else [sent[0]])
        assert not backfill_could_start(postgres_url)
    assert backfill_could_start(postgres_url)
