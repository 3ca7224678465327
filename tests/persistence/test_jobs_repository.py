"""The jobs table on SQLite and PostgreSQL: idempotent insert, claim, exactly-once final record."""

from __future__ import annotations

from agentqueue.jobs import JobResult, JobStatus, parse_job, utcnow
from agentqueue.persistence import jobs_repository
from agentqueue.persistence.engine import get_sessionmaker
from tests.support.pipeline import simple_job


def _job(index: int, **extra: object):
    return parse_job(simple_job(index, id=f"job-{index}", **extra), max_bytes=1 << 20)


def test_insert_is_idempotent_by_id(database_url: str) -> None:
    sessions = get_sessionmaker(database_url)
    with sessions.begin() as session:
        first = jobs_repository.insert_new(
            session, [_job(1), _job(2)], status=JobStatus.QUEUED, now=utcnow()
        )
    with sessions.begin() as session:
        again = jobs_repository.insert_new(
            session, [_job(2), _job(3)], status=JobStatus.QUEUED, now=utcnow()
        )
    assert first == {"job-1", "job-2"} and again == {"job-3"}


def test_claim_and_finish_write_one_final_record(database_url: str) -> None:
    """Given a claimed job, a second finish (a redelivery) changes nothing."""
    sessions = get_sessionmaker(database_url)
    now = utcnow()
    with sessions.begin() as session:
        jobs_repository.insert_new(session, [_job(1)], status=JobStatus.QUEUED, now=now)
    with sessions.begin() as session:
        claimed = jobs_repository.claim(session, ["job-1", "missing"], now=now)
    assert [c.job.id for c in claimed] == ["job-1"] and claimed[0].attempts == 1
    assert claimed[0].submitted_at.tzinfo is not None

    done = JobResult(
        job_id="job-1", status=JobStatus.SUCCEEDED, output="first", finished_at=utcnow()
    )
    late = done.model_copy(update={"output": "second"})
    with sessions.begin() as session:
        assert jobs_repository.finish(session, [done]) == {"job-1"}
    with sessions.begin() as session:
        assert jobs_repository.finish(session, [late]) == set()
        assert jobs_repository.claim(session, ["job-1"], now=now) == []
    with sessions() as session:
        record = jobs_repository.get_record(session, "job-1")
        assert record is not None
        result = jobs_repository.record_to_result(record)
    assert result.output == "first" and result.status is JobStatus.SUCCEEDED


def test_only_queued_or_deferred_jobs_cancel(database_url: str) -> None:
    sessions = get_sessionmaker(database_url)
    with sessions.begin() as session:
        jobs_repository.insert_new(
            session, [_job(1), _job(2)], status=JobStatus.QUEUED, now=utcnow()
        )
        jobs_repository.claim(session, ["job-2"], now=utcnow())
    with sessions.begin() as session:
        moved = jobs_repository.set_status(
            session,
            ["job-1", "job-2"],
            status=JobStatus.CANCELLED,
            from_statuses=jobs_repository.CANCELLABLE,
        )
    assert moved == {"job-1"}


def test_a_group_is_finished_in_one_go_and_only_once(database_url: str) -> None:
    """Given three claimed jobs and one never claimed, finishing all four writes three."""
    sessions = get_sessionmaker(database_url)
    now = utcnow()
    with sessions.begin() as session:
        jobs_repository.insert_new(
            session, [_job(i) for i in range(4)], status=JobStatus.QUEUED, now=now
        )
        jobs_repository.claim(session, ["job-0", "job-1", "job-2"], now=now)
    results = [
        JobResult(
            job_id=f"job-{i}", status=JobStatus.SUCCEEDED, output=f"out {i}", finished_at=utcnow()
        )
        for i in range(4)
    ]
    with sessions.begin() as session:
        assert jobs_repository.finish(session, results) == {"job-0", "job-1", "job-2"}
    with sessions.begin() as session:
        assert jobs_repository.finish(session, results) == set()
    with sessions() as session:
        stored = {
            r.id: jobs_repository.record_to_result(r)
            for r in jobs_repository.get_records(session, [f"job-{i}" for i in range(4)])
        }
    assert [stored[f"job-{i}"].output for i in range(3)] == ["out 0", "out 1", "out 2"]
    assert stored["job-1"].finished_at is not None and stored["job-3"].status.value == "queued"
