"""`one_of(column, name)`: the rows whose column is one of the values bound at execution, on
both databases, for no value, one or many; PostgreSQL gets one statement text for any number
of values (an array), SQLite an `IN` list."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Connection

from agentqueue.jobs import AgentJob, JobStatus, utcnow
from agentqueue.persistence import jobs_repository
from agentqueue.persistence.engine import dispose_all, get_sessionmaker
from agentqueue.persistence.migrate import upgrade
from agentqueue.persistence.one_of import one_of
from tests.support.pipeline import simple_job

JOBS = jobs_repository.jobs
PICK = select(JOBS.c.id).where(one_of(JOBS.c.id, "wanted")).order_by(JOBS.c.id)


@pytest.mark.parametrize(
    "wanted",
    [[], ["job-0003"], ["job-0001", "job-0004", "job-0002"], ["job-0002", "nobody", "job-0002"]],
)
def test_selects_the_rows_whose_value_is_one_of_those_given(
    database_url: str, wanted: list[str]
) -> None:
    upgrade(database_url)
    sessions = get_sessionmaker(database_url)
    try:
        jobs = [AgentJob.model_validate({**simple_job(n), "id": f"job-{n:04d}"}) for n in range(6)]
        with sessions.begin() as session:
            jobs_repository.insert_new(session, jobs, status=JobStatus.QUEUED, now=utcnow())
        with sessions() as session:
            found = list(session.scalars(PICK, {"wanted": wanted}))
        assert found == sorted({w for w in wanted if w != "nobody"})
    finally:
        dispose_all()


def test_postgresql_sends_one_text_for_any_number_of_values(postgres_url: str) -> None:
    upgrade(postgres_url)
    sessions = get_sessionmaker(postgres_url)
    texts: list[str] = []

    def on_statement(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        texts.append(statement)

    engine = sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", on_statement)
    try:
        with sessions() as session:
            for count in (1, 2, 50):
                session.execute(PICK, {"wanted": [f"job-{n:04d}" for n in range(count)]}).all()
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        dispose_all()
    assert len(texts) == 3 and len(set(texts)) == 1, texts
    assert "ANY" in texts[0]
