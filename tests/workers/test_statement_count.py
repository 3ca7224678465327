"""What one group of jobs costs the database, counted at the engine: two transactions (the
start, claiming and admitting; the completion, settling and recording) and a number of
statements that does not grow with the group, on SQLite and PostgreSQL, under a budget so the
usage rows are locked and written too. A change that adds a transaction or a statement per job
to the path every job takes fails here."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy import text as text_sql
from sqlalchemy.engine import Connection, Engine

from agentqueue.budget.budget_limits import set_budget
from agentqueue.jobs import AgentJob, JobStatus, utcnow
from agentqueue.persistence import jobs_repository
from agentqueue.persistence.engine import dispose_all
from agentqueue.persistence.migrate import upgrade
from agentqueue.settings import load_settings
from agentqueue.workers.context import WorkerContext
from agentqueue.workers.executor import BatchExecutor
from tests.support.pipeline import simple_job

# A group's statements, whatever its size: the start (claim, which also reads the entry
# states and, on PostgreSQL, takes the ledger writers' lock; budgets, usage rows locked,
# existing entries, write-back, entry insert) and the completion (entries locked, with the
# writers' lock on PostgreSQL; settlement; the usage rows locked and written back, or on
# PostgreSQL the budgets read and the budgeted rows changed by increments; final records).
# Today 10-11 on PostgreSQL and 12-13 on SQLite, with a little room.
MOST_STATEMENTS_PER_GROUP = {"postgresql": 12, "sqlite": 14}


@dataclass
class Counts:
    texts: list[str] = field(default_factory=list)
    commits: int = 0

    @property
    def statements(self) -> list[str]:
        """Each statement's first word."""
        return [text.split(None, 1)[0].upper() for text in self.texts]

    def reset(self) -> None:
        self.texts.clear()
        self.commits = 0


def counted_context(redis_url: str, database_url: str) -> Iterator[WorkerContext]:
    upgrade(database_url)
    settings = load_settings(
        redis_url=redis_url,
        database_url=database_url,
        cache_enabled=False,  # the cache's own SQL tier is not the path being counted
    )
    built = WorkerContext.build(settings)
    try:
        yield built
    finally:
        built.close()
        dispose_all()


@pytest.fixture
def context(redis_url: str, database_url: str) -> Iterator[WorkerContext]:
    yield from counted_context(redis_url, database_url)


@pytest.fixture
def postgres_context(redis_url: str, postgres_url: str) -> Iterator[WorkerContext]:
    yield from counted_context(redis_url, postgres_url)


@pytest.fixture
def counts(context: WorkerContext) -> Iterator[Counts]:
    yield from counting(context)


@pytest.fixture
def postgres_counts(postgres_context: WorkerContext) -> Iterator[Counts]:
    yield from counting(postgres_context)


def counting(context: WorkerContext) -> Iterator[Counts]:
    engine = context.sessions.kw["bind"]
    assert isinstance(engine, Engine)
    seen = Counts()

    def on_statement(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        seen.texts.append(" ".join(statement.split()))

    def on_commit(conn: Connection) -> None:
        seen.commits += 1

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "commit", on_commit)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        event.remove(engine, "commit", on_commit)


def engine_dialect(context: WorkerContext) -> str:
    engine = context.sessions.kw["bind"]
    assert isinstance(engine, Engine)
    return engine.dialect.name


def queued(context: WorkerContext, first: int, count: int) -> list[str]:
    jobs = [AgentJob.model_validate(simple_job(first + n)) for n in range(count)]
    with context.sessions.begin() as session:
        jobs_repository.insert_new(session, jobs, status=JobStatus.QUEUED, now=utcnow())
    return [job.id for job in jobs]


@pytest.mark.parametrize("size", [1, 5, 25])
def test_a_group_pays_two_transactions_and_a_bounded_number_of_statements(
    context: WorkerContext, counts: Counts, size: int
) -> None:
    """Given a budgeted scope and `size` queued jobs, when the executor runs them as one
    group, then the database sees two commits and no more than a fixed number of statements,
    the same for 1, 5 or 25 jobs."""
    set_budget(context.sessions, "global", "daily", Decimal(1000), now=utcnow(), timezone="UTC")
    BatchExecutor(context).run(queued(context, 0, 2))  # warm: usage rows exist, engine connected
    ids = queued(context, 1000, size)
    counts.reset()

    report = BatchExecutor(context).run(ids)

    assert (report.retry, report.skipped, report.failed) == ({}, [], {})
    records = context.results.fetch(ids)
    assert all(records[job_id].status is JobStatus.SUCCEEDED for job_id in ids)
    print(f"\n{size} job(s): {counts.commits} commits, {len(counts.statements)} statements")
    # Start and completion; the answers' journal is in Redis, not a transaction per answer.
    assert counts.commits == 2, counts.statements
    most = MOST_STATEMENTS_PER_GROUP[engine_dialect(context)]
    assert len(counts.statements) <= most, counts.statements


def test_a_group_without_budgets_touches_no_usage_row(
    context: WorkerContext, counts: Counts
) -> None:
    """Given no budget at all, when the executor runs a group, then no statement writes the
    usage rows, and on PostgreSQL none reads or locks them either (only budgeted scopes keep
    them: the admission and the settlement each read which scopes have a budget instead);
    no usage row exists afterwards. (SQLite's settlement reads the rows it holds under its
    database-wide write lock, in-process.)"""
    BatchExecutor(context).run(queued(context, 0, 2))  # warm
    ids = queued(context, 2000, 5)
    counts.reset()

    report = BatchExecutor(context).run(ids)

    assert (report.retry, report.skipped, report.failed) == ({}, [], {})
    touching = [text for text in counts.texts if "budget_usage" in text]
    assert [text for text in touching if not text.startswith("SELECT")] == [], touching
    if engine_dialect(context) == "postgresql":
        assert touching == [], touching
    assert sum("FROM budgets" in text for text in counts.texts) >= 1
    with context.sessions() as session:
        assert session.execute(text_sql("SELECT count(*) FROM budget_usage")).scalar_one() == 0


def test_on_postgresql_a_group_of_any_size_sends_the_same_statement_texts(
    postgres_context: WorkerContext, postgres_counts: Counts
) -> None:
    """Given a budgeted scope, when groups of 2, 7 and 40 jobs run, then PostgreSQL receives
    the very same statement texts for each (a group's ids go as one array, not as an `IN` list
    of that many values): each text is compiled once and prepared by the driver, whatever the
    group's size. (A lone job's final record takes a statement of its own.)"""
    context, counts = postgres_context, postgres_counts
    set_budget(context.sessions, "global", "daily", Decimal(1000), now=utcnow(), timezone="UTC")
    BatchExecutor(context).run(queued(context, 0, 2))  # warm: usage rows exist
    texts: list[list[str]] = []
    for first, size in ((100, 2), (200, 7), (300, 40)):
        ids = queued(context, first, size)
        counts.reset()
        report = BatchExecutor(context).run(ids)
        assert (report.retry, report.skipped, report.failed) == ({}, [], {})
        records = context.results.fetch(ids)
        assert all(records[job_id].status is JobStatus.SUCCEEDED for job_id in ids)
        texts.append(list(counts.texts))
    assert texts[0] == texts[1] == texts[2], [sorted(set(t) - set(texts[0])) for t in texts]
