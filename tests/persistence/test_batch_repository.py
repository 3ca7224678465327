"""Provider batch rows on SQLite and PostgreSQL: jobs wait as `batched`, batches are formed
per (provider, model) within limits, and a batch is held by one worker at a time."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from agentqueue.jobs import JobStatus, parse_job, utcnow
from agentqueue.persistence import batch_repository as repo
from agentqueue.persistence import jobs_repository
from agentqueue.persistence.batch_tables import ProviderBatchRecord
from agentqueue.persistence.engine import get_sessionmaker
from tests.support.pipeline import simple_job


def _enlist(database_url: str, models: list[str]) -> list[str]:
    sessions = get_sessionmaker(database_url)
    jobs = [
        parse_job(simple_job(i, id=f"job-{i}", model=model), max_bytes=1 << 20)
        for i, model in enumerate(models)
    ]
    now = utcnow()
    with sessions.begin() as session:
        jobs_repository.insert_new(session, jobs, status=JobStatus.QUEUED, now=now)
        jobs_repository.claim(session, [j.id for j in jobs], now=now)
        moved = repo.enlist(
            session,
            [
                {
                    "job_id": job.id,
                    "batch_id": None,
                    "provider": "openai",
                    "model": job.model,
                    "request": "{}",
                    "request_bytes": 100,
                    "priority": "low",
                    "deadline": None,
                    "created_at": now,
                }
                for job in jobs
            ],
        )
    assert moved == {j.id for j in jobs}
    return [j.id for j in jobs]


def test_batches_hold_one_model_each_within_the_request_limit(database_url: str) -> None:
    """Given five batched jobs (three on gpt-4o-mini, two on gpt-4o) and a limit of two
    requests per batch, then two batches of gpt-4o-mini (2 + 1) and one of gpt-4o, every job in
    exactly one, all recorded before anything is sent; a second run finds nothing to batch."""
    ids = _enlist(database_url, ["gpt-4o-mini"] * 3 + ["gpt-4o"] * 2)
    sessions = get_sessionmaker(database_url)
    with sessions.begin() as session:
        statuses = {r.id: r.status for r in jobs_repository.get_records(session, ids)}
        created = repo.form_batches(session, now=utcnow(), limits={"openai": (2, 10_000)})
    assert set(statuses.values()) == {"batched"}
    with sessions.begin() as session:
        again = repo.form_batches(session, now=utcnow(), limits={"openai": (2, 10_000)})
        rows = session.scalars(select(ProviderBatchRecord)).all()
        members = {b.id: [j for j, _ in repo.requests_of(session, b.id)] for b in rows}
    assert again == []
    assert len(created) == 3
    assert sorted((b.model, b.job_count, b.state) for b in rows) == [
        ("gpt-4o", 2, "recorded"),
        ("gpt-4o-mini", 1, "recorded"),
        ("gpt-4o-mini", 2, "recorded"),
    ]
    assert sorted(j for batch in members.values() for j in batch) == sorted(ids)


def test_a_batch_is_held_by_one_worker_until_its_hold_lapses(database_url: str) -> None:
    """Given a recorded batch, the first take holds it; a second take at the same moment gets
    nothing; once the hold has lapsed (its holder died), the next take gets it."""
    _enlist(database_url, ["gpt-4o-mini"])
    sessions = get_sessionmaker(database_url)
    now = utcnow()
    with sessions.begin() as session:
        repo.form_batches(session, now=now, limits={})
    take = {"states": [repo.RECORDED], "hold_s": 30.0, "polling": False}
    with sessions.begin() as session:
        first = repo.take(session, now=now, **take)  # type: ignore[arg-type]
    with sessions.begin() as session:
        second = repo.take(session, now=now, **take)  # type: ignore[arg-type]
    with sessions.begin() as session:
        later = repo.take(session, now=now + timedelta(seconds=31), **take)  # type: ignore[arg-type]
    assert len(first) == 1 and second == [] and [b.id for b in later] == [first[0].id]
