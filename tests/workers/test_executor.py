"""The batch executor's steps on a real SQLite file and Redis, with a provider stand-in that
counts its calls: claim -> admit -> call -> complete, a budget rejection, a retryable failure,
and answers kept while the ledger is down (`PendingAnswers`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import event, select
from sqlalchemy.engine import Connection

from agentqueue.budget.budget_limits import set_budget
from agentqueue.constants import PENDING_ANSWER_INDEX_KEY, PENDING_ANSWER_PREFIX
from agentqueue.errors import DatabaseUnavailable
from agentqueue.jobs import AgentJob, JobStatus, utcnow
from agentqueue.persistence import answers_repository, jobs_repository
from agentqueue.persistence.engine import dispose_all
from agentqueue.persistence.job_table import JobRecord
from agentqueue.persistence.ledger_tables import LedgerEntryRecord
from agentqueue.persistence.migrate import upgrade
from agentqueue.providers import Provider, ProviderError, ProviderRequest, ProviderResponse
from agentqueue.settings import Settings, load_settings
from agentqueue.workers.context import WorkerContext
from agentqueue.workers.executor import BatchExecutor
from tests.support.pipeline import simple_job
from tests.support.services import free_port


class CountingProvider:
    """The simulated provider, counting its calls; `before` runs inside each call (to fail it
    or to take the database away after the provider has answered)."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls = 0
        self.before: Callable[[], None] | None = None
        self.after: Callable[[], None] | None = None

    def complete(self, request: ProviderRequest) -> ProviderResponse:
        self.calls += 1
        if self.before is not None:
            self.before()
        response = self.inner.complete(request)
        if self.after is not None:
            self.after()
        return response

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def database_dir(tmp_path: Path) -> Path:
    """A directory holding only the SQLite file, so a test can take the database away."""
    directory = tmp_path / "db"
    directory.mkdir()
    upgrade(f"sqlite:///{directory / 'agentqueue.db'}")
    return directory


def counting_context(settings: Settings) -> Iterator[WorkerContext]:
    """A worker's context for `settings` whose provider counts its calls (a fixture's body)."""
    built = WorkerContext.build(settings)
    built.provider = CountingProvider(built.provider)
    try:
        yield built
    finally:
        built.close()
        dispose_all()


@pytest.fixture
def context(redis_url: str, database_dir: Path) -> Iterator[WorkerContext]:
    yield from counting_context(
        load_settings(
            redis_url=redis_url, database_url=f"sqlite:///{database_dir / 'agentqueue.db'}"
        )
    )


@dataclass(frozen=True)
class DatabaseAway:
    """Calling it moves the SQLite database's directory away (an outage the worker meets
    mid-step); `back` puts it back."""

    directory: Path
    away: Path

    def __call__(self) -> None:
        dispose_all()  # pooled connections would keep the open file
        os.rename(self.directory, self.away)

    def back(self) -> None:
        os.rename(self.away, self.directory)


def provider_of(context: WorkerContext) -> CountingProvider:
    assert isinstance(context.provider, CountingProvider)
    return context.provider


def queued(context: WorkerContext, count: int, **fields: object) -> list[str]:
    jobs = [AgentJob.model_validate(simple_job(n, **fields)) for n in range(count)]
    with context.sessions.begin() as session:
        jobs_repository.insert_new(session, jobs, status=JobStatus.QUEUED, now=utcnow())
    return [job.id for job in jobs]


def job_rows(context: WorkerContext) -> dict[str, JobRecord]:
    with context.sessions() as session:
        return {record.id: record for record in session.scalars(select(JobRecord))}


def entry_rows(context: WorkerContext) -> dict[str, LedgerEntryRecord]:
    with context.sessions() as session:
        return {entry.job_id: entry for entry in session.scalars(select(LedgerEntryRecord))}


def test_jobs_go_through_every_step_and_are_recorded_once(context: WorkerContext) -> None:
    """Given two queued jobs, when the executor runs them, then each is claimed, admitted,
    answered by one provider call, charged in the ledger and recorded with that cost, and its
    result is published; run again (a redelivery), both are skipped and nothing is paid."""
    ids = queued(context, 2)
    report = BatchExecutor(context).run(ids)
    assert (report.retry, report.skipped, report.deferred) == ({}, [], {})
    assert provider_of(context).calls == 2

    jobs, entries = job_rows(context), entry_rows(context)
    published = context.results.fetch(ids)
    for job_id in ids:
        assert jobs[job_id].status == JobStatus.SUCCEEDED.value
        assert entries[job_id].state == "settled" and entries[job_id].cost_usd > 0
        assert published[job_id].status is JobStatus.SUCCEEDED
        assert published[job_id].cost == entries[job_id].cost_usd
        assert published[job_id].usage.output_tokens == entries[job_id].output_tokens > 0

    again = BatchExecutor(context).run(ids)
    assert sorted(again.skipped) == sorted(ids) and again.retry == {}
    assert provider_of(context).calls == 2


def test_a_redelivered_finished_job_drops_the_answer_its_dead_worker_left_kept(
    context: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given jobs settled by a worker that died before dropping their kept answers (here its
    `forget` never runs), when their messages come back, then they are skipped, nothing is
    paid again and the answers leave Redis at once, not only when their TTL runs out."""
    ids = queued(context, 3)
    journal = context.journal
    with monkeypatch.context() as patched:
        patched.setattr(journal, "forget", lambda job_ids, **_: None)
        BatchExecutor(context).run(ids)
    kept = sorted(context.redis.scan_iter(f"{PENDING_ANSWER_PREFIX}*"))
    assert kept == sorted(f"{PENDING_ANSWER_PREFIX}{i}".encode() for i in ids)

    again = BatchExecutor(context).run(ids)
    assert sorted(again.skipped) == sorted(ids)
    assert provider_of(context).calls == 3
    assert list(context.redis.scan_iter(f"{PENDING_ANSWER_PREFIX}*")) == []
    assert {r.status for r in context.results.fetch(ids).values()} == {JobStatus.SUCCEEDED}


def test_the_sweep_drops_kept_answers_of_ended_jobs_only(
    context: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given answers left kept for three settled jobs (their `forget` never ran), for a job
    that no longer exists, for a queued job whose retry still needs its answer, and for a queued
    job whose answer has expired, when the journal drops the answers of ended jobs, then the
    settled and missing jobs' answers go, the expired one leaves the index, the needed one
    stays and is looked at again later; answers kept less than `older_than_s` ago are not read."""
    ids = queued(context, 3)
    journal = context.journal
    with monkeypatch.context() as patched:
        patched.setattr(journal, "forget", lambda job_ids, **_: None)
        BatchExecutor(context).run(ids)
    waiting, expired = queued(context, 2, priority="low")
    kept = journal.store.take(ids[:1])[ids[0]]
    journal.store.keep({waiting: kept, expired: kept, "no-such-job": kept})
    context.redis.delete(f"{PENDING_ANSWER_PREFIX}{expired}")  # its TTL ran out

    assert journal.drop_finished(older_than_s=60) == []
    scores = dict(context.redis.zrange(PENDING_ANSWER_INDEX_KEY, 0, -1, withscores=True))
    assert len(scores) == 6

    assert sorted(journal.drop_finished(older_than_s=0)) == sorted([*ids, "no-such-job"])
    assert list(context.redis.scan_iter(f"{PENDING_ANSWER_PREFIX}*")) == [
        f"{PENDING_ANSWER_PREFIX}{waiting}".encode()
    ]
    after = dict(context.redis.zrange(PENDING_ANSWER_INDEX_KEY, 0, -1, withscores=True))
    assert list(after) == [waiting.encode()]
    assert after[waiting.encode()] > scores[waiting.encode()]
    assert journal.take([waiting]) == {waiting: kept}


def test_a_job_over_its_budget_is_rejected_without_a_provider_call(
    context: WorkerContext,
) -> None:
    """Given a global daily budget of $0, when a job runs, then it ends rejected with
    budget_exceeded, nothing is reserved and the provider is never called."""
    set_budget(context.sessions, "global", "daily", Decimal(0), now=utcnow(), timezone="UTC")
    [job_id] = queued(context, 1)
    report = BatchExecutor(context).run([job_id])
    assert report.retry == {}
    record = job_rows(context)[job_id]
    assert record.status == JobStatus.REJECTED.value
    assert record.error_code == "budget_exceeded"
    assert entry_rows(context) == {}
    assert provider_of(context).calls == 0


def test_a_retryable_provider_failure_releases_the_reservation_and_requeues(
    context: WorkerContext,
) -> None:
    """Given a provider that answers 'try again', when a job runs, then the executor asks
    for a retry, the job is queued again and its reservation is released: that call is known
    to have cost nothing, and a reservation left over for the next attempt would mean a call
    of unknown outcome (charged as possibly repeated, issue 11)."""
    [job_id] = queued(context, 1)

    def busy() -> None:
        raise ProviderError("rate limited", retryable=True, retry_after_s=2.0)

    provider_of(context).before = busy
    report = BatchExecutor(context).run([job_id])
    assert list(report.retry) == [job_id]
    assert getattr(report.retry[job_id], "retry_after_s", None) == 2.0
    assert job_rows(context)[job_id].status == JobStatus.QUEUED.value
    entry = entry_rows(context)[job_id]
    assert entry.state == "released" and entry.cost_usd == 0 and entry.possible_repeat_usd == 0


def test_an_answer_paid_while_the_ledger_is_down_is_settled_on_retry_without_a_new_call(
    context: WorkerContext, database_dir: Path, tmp_path: Path
) -> None:
    """Given a job whose provider call succeeds but whose database goes away before the
    settlement, when the executor runs it, then nothing is written, the job comes back for a
    retry and the paid answer is kept; when the database is back and the retry runs, then the
    job settles from the kept answer, with the provider called once in all."""
    [job_id] = queued(context, 1)
    outage = DatabaseAway(database_dir, tmp_path / "away")
    provider_of(context).after = outage
    first = BatchExecutor(context).run([job_id])
    assert list(first.retry) == [job_id]
    assert isinstance(first.retry[job_id], DatabaseUnavailable)
    assert context.redis.exists(f"{PENDING_ANSWER_PREFIX}{job_id}") == 1

    provider_of(context).after = None
    outage.back()
    entry = entry_rows(context)[job_id]
    assert entry.state == "reserved"  # the failed step wrote nothing

    second = BatchExecutor(context).run([job_id])
    assert (second.retry, second.skipped) == ({}, [])
    assert provider_of(context).calls == 1
    record = job_rows(context)[job_id]
    assert record.status == JobStatus.SUCCEEDED.value and record.attempts == 2
    settled = entry_rows(context)[job_id]
    assert settled.state == "settled" and settled.cost_usd > 0
    assert context.results.fetch([job_id])[job_id].cost == settled.cost_usd
    assert context.redis.exists(f"{PENDING_ANSWER_PREFIX}{job_id}") == 0


def test_an_answer_goes_to_the_sql_journal_only_when_redis_cannot_take_it(
    context: WorkerContext,
) -> None:
    """Given the journal's Redis unreachable when the provider answers, when the executor runs
    a job, then its answer is written to the SQL journal, the job settles and the row goes
    with the settlement; with Redis up, a second job's answer is not written to SQL, and no
    answer is left in Redis once settled."""
    [first_id, second_id] = queued(context, 2)
    journal = context.journal
    reachable = journal.store.client
    dead = redis.Redis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    engine = context.sessions.kw["bind"]
    writes: list[str] = []

    def on_statement(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO PROVIDER_ANSWERS"):
            writes.append(statement)

    def redis_away() -> None:
        journal.store.client = dead

    event.listen(engine, "before_cursor_execute", on_statement)
    try:
        provider_of(context).after = redis_away
        first = BatchExecutor(context).run([first_id])
        journal.store.client = reachable
        provider_of(context).after = None
        assert len(writes) == 1
        second = BatchExecutor(context).run([second_id])
        assert len(writes) == 1
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        journal.store.client = reachable
    assert (first.retry, first.failed, second.retry, second.failed) == ({}, {}, {}, {})
    assert provider_of(context).calls == 2
    with context.sessions() as session:
        assert answers_repository.read(session, [first_id, second_id]) == {}
    assert list(context.redis.scan_iter(f"{PENDING_ANSWER_PREFIX}*")) == []
    assert {r.status for r in job_rows(context).values()} == {JobStatus.SUCCEEDED.value}
