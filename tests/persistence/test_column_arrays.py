"""A group's rows as column arrays on PostgreSQL (`column_arrays`): the entries a group inserts
and settles, and the final records it writes, read back exactly as the executemany they
replace writes them (money to the last digit, NULLs, JSON, aware times, Python-side defaults);
an update touches only the rows its condition allows and returns just those; a naive time is
refused as before; SQLite and a lone row keep the executemany."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from agentqueue.jobs import AgentJob, ErrorInfo, JobResult, JobStatus, utcnow
from agentqueue.persistence import jobs_repository
from agentqueue.persistence.column_arrays import update_rows
from agentqueue.persistence.engine import dispose_all, get_sessionmaker
from agentqueue.persistence.ledger_entries import ENTRIES, insert_entries, update_entries
from agentqueue.persistence.migrate import upgrade
from tests.support.pipeline import simple_job

JOBS = jobs_repository.jobs
WHEN = datetime(2026, 12, 1, 9, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(database_url)
    try:
        yield get_sessionmaker(database_url)
    finally:
        dispose_all()


def entry(job_id: str, n: int) -> dict[str, Any]:
    """A new entry as the ledger writes it, leaving out `possible_repeat_usd` (a column with a
    Python-side default) and `charge_reason` (nullable)."""
    return {
        "job_id": job_id,
        "state": "reserved",
        "tenant": f"tenant-{n}",
        "agent_type": "support-bot",
        "model": "gpt-4o-mini",
        "provider": None if n % 2 else "openai",
        "service_tier": "standard",
        "reserved_usd": Decimal("0.0006163517") * (n + 1),
        "cost_usd": Decimal(0),
        "standard_cost_usd": Decimal(0),
        "avoided_usd": Decimal(0),
        "input_tokens_estimate": 13 + n,
        "max_output_tokens": 1024,
        "input_tokens": 0,
        "output_tokens": 0,
        "cached_input_tokens": 0,
        "usage_keys": [["global", "daily", "2026-12-01T00:00:00+00:00"], ["tenant:é", "weekly"]],
        "day": "2026-12-01",
        "model_reason": 'cheaper "model" \' under pressure' if n == 1 else None,
        "budget_action": None,
        "reserved_at": WHEN + timedelta(microseconds=n),
        "settled_at": None,
        "updated_at": WHEN,
    }


def settlement(job_id: str, n: int) -> dict[str, Any]:
    return {
        "k_job_id": job_id,
        "state": "settled",
        "cost_usd": Decimal("0.0000148500") + Decimal("0.0000000001") * n,
        "standard_cost_usd": Decimal("12345.0123456789"),
        "input_tokens": 7 * n,
        "output_tokens": 23,
        "cached_input_tokens": 0,
        "possible_repeat_usd": Decimal(0),
        "charge_reason": "repeat" if n == 2 else None,
        "settled_at": WHEN + timedelta(seconds=n),
        "updated_at": WHEN,
    }


def written(sessions: sessionmaker[Session], ids: list[str]) -> list[dict[str, Any]]:
    with sessions() as session:
        rows = session.execute(select(ENTRIES).where(ENTRIES.c.job_id.in_(ids)))
        return sorted(
            ({k: v for k, v in row._mapping.items() if k != "job_id"} for row in rows),
            key=lambda row: row["tenant"],
        )


def statements(sessions: sessionmaker[Session]) -> tuple[list[str], Any]:
    seen: list[str] = []

    def on_statement(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(sessions.kw["bind"], "before_cursor_execute", on_statement)
    return seen, on_statement


def test_a_group_of_entries_reads_back_as_the_executemany_writes_it(
    sessions: sessionmaker[Session], database_url: str
) -> None:
    """Given the same five entries inserted and settled once as a group and once row by row
    (each row alone takes the executemany), then both read back identically; on PostgreSQL
    the group went as one `unnest` statement for its inserts and one for its settlements."""
    grouped = [f"group-{n}" for n in range(5)]
    alone = [f"alone-{n}" for n in range(5)]
    seen, listener = statements(sessions)
    try:
        with sessions.begin() as session:
            insert_entries(session, [entry(job_id, n) for n, job_id in enumerate(grouped)])
            update_entries(session, [settlement(job_id, n) for n, job_id in enumerate(grouped)])
    finally:
        event.remove(sessions.kw["bind"], "before_cursor_execute", listener)
    with sessions.begin() as session:
        for n, job_id in enumerate(alone):
            insert_entries(session, [entry(job_id, n)])
            update_entries(session, [settlement(job_id, n)])

    assert written(sessions, grouped) == written(sessions, alone)
    first = written(sessions, grouped)[0]
    assert first["possible_repeat_usd"] == Decimal(0)  # the column's Python-side default
    assert first["cost_usd"] == Decimal("0.0000148500")
    assert first["standard_cost_usd"] == Decimal("12345.0123456789")
    assert first["settled_at"] == WHEN
    assert written(sessions, grouped)[2]["charge_reason"] == "repeat"
    unnested = [text for text in seen if "unnest(" in text]
    if database_url.startswith("postgresql"):
        assert len(seen) == 2 and len(unnested) == 2, seen
    else:
        assert unnested == []


def test_an_update_changes_only_the_rows_its_condition_allows(postgres_url: str) -> None:
    """Given four jobs of which two are running, when all four are finished as one group, then
    the two running ones get their final record (ids returned), and the other two keep theirs."""
    upgrade(postgres_url)
    sessions = get_sessionmaker(postgres_url)
    try:
        jobs = [AgentJob.model_validate({**simple_job(n), "id": f"job-{n}"}) for n in range(4)]
        with sessions.begin() as session:
            jobs_repository.insert_new(session, jobs[:2], status=JobStatus.RUNNING, now=utcnow())
            jobs_repository.insert_new(session, jobs[2:], status=JobStatus.QUEUED, now=utcnow())
        results = [
            JobResult(job_id="job-0", status=JobStatus.SUCCEEDED, output="é \u2603"),
            JobResult(
                job_id="job-1",
                status=JobStatus.FAILED,
                error=ErrorInfo(code="provider_error", message="no"),
            ),
            JobResult(job_id="job-2", status=JobStatus.SUCCEEDED, output="late"),
            JobResult(job_id="job-3", status=JobStatus.SUCCEEDED, output="late"),
        ]
        with sessions.begin() as session:
            finished = jobs_repository.finish(session, results)
        assert finished == {"job-0", "job-1"}
        with sessions() as session:
            records = {
                r.id: r
                for r in session.execute(select(JOBS.c.id, JOBS.c.status, JOBS.c.error_code))
            }
            got = jobs_repository.record_to_result(
                jobs_repository.get_records(session, ["job-0"])[0]
            )
        assert records["job-0"].status == "succeeded" and got.output == "é \u2603"
        assert records["job-1"].status == "failed"
        assert records["job-1"].error_code == "provider_error"
        assert records["job-2"].status == records["job-3"].status == "queued"
    finally:
        dispose_all()


def test_a_naive_time_is_refused_as_in_an_executemany(postgres_url: str) -> None:
    upgrade(postgres_url)
    sessions = get_sessionmaker(postgres_url)
    try:
        with sessions.begin() as session:
            insert_entries(session, [entry("a", 0), entry("b", 1)])
        naive = [{**settlement(job_id, 0), "settled_at": datetime(2026, 12, 1)} for job_id in "ab"]
        with pytest.raises(Exception, match="naive datetime"), sessions.begin() as session:
            update_entries(session, naive)
        with sessions.begin() as session:
            connection = session.connection()
            rows = [{"job_id": "a", "state": "released"}, {"job_id": "b", "state": "released"}]
            update_rows(connection, ENTRIES, rows, match="job_id")
        assert {row["state"] for row in written(sessions, ["a", "b"])} == {"released"}
    finally:
        dispose_all()
