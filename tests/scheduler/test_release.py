"""Deferred work lives in SQL and is released by beat into the queues, each job exactly once."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from agentqueue.constants import TASK_RELEASE_DEFERRED
from agentqueue.jobs import JobStatus, utcnow
from agentqueue.messaging import JobRef
from agentqueue.persistence.engine import get_sessionmaker
from agentqueue.persistence.ledger_tables import LedgerEntryRecord
from agentqueue.scheduler.release import release_deferred
from tests.support.pipeline import Pipeline, running_pipeline, simple_job


def window_excluding_now() -> str:
    """A one-hour off-peak window that starts two hours from now (UTC)."""
    start = (datetime.now(UTC).hour + 2) % 24
    return f"{start:02d}:00-{(start + 1) % 24:02d}:00"


ALL_DAY = {"AGENTQUEUE_OFFPEAK_WINDOWS": "00:00-24:00"}


@pytest.fixture
def peak_pipeline(redis_url: str, postgres_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    """A client that sees peak hours now; workers started with ALL_DAY see off-peak."""
    with running_pipeline(
        redis_url, postgres_url, tmp_path, offpeak_windows=window_excluding_now()
    ) as pipeline:
        yield pipeline


def _run_beat_task(pipeline: Pipeline) -> None:
    pipeline.queue.celery.send_task(TASK_RELEASE_DEFERRED, queue="agentqueue.critical")


def test_low_job_waits_for_the_window_then_runs_on_release(peak_pipeline: Pipeline) -> None:
    """Given peak hours, a low job is deferred with its release time; when the window is open
    and release_deferred runs (on a real worker), the job runs on the model's cheaper flex
    tier, and the ledger shows what that saved against the standard price."""
    handle = peak_pipeline.queue.submit(simple_job(1, priority="low", model="o4-mini"))
    plain = peak_pipeline.queue.submit(simple_job(3, priority="low", model="gpt-4o-mini"))
    normal = peak_pipeline.queue.submit(simple_job(2, priority="normal"))

    deferred = handle.status()
    assert deferred.status is JobStatus.DEFERRED
    assert deferred.release_after is not None and deferred.release_after > utcnow()
    assert deferred.release_after.minute == 0
    assert redis.Redis.from_url(peak_pipeline.settings.redis_url).llen("agentqueue.low") == 0

    peak_pipeline.start_worker(env=ALL_DAY)
    assert normal.get(timeout=20).status is JobStatus.SUCCEEDED
    assert handle.status().status is JobStatus.DEFERRED
    _run_beat_task(peak_pipeline)

    result = handle.get(timeout=30)
    assert result.status is JobStatus.SUCCEEDED and result.output
    assert result.service_tier == "flex"
    # A model without a flex price runs on the standard tier, at the standard price.
    assert plain.get(timeout=30).service_tier == "standard"
    with peak_pipeline.queue.sessions() as session:
        entry = session.get(LedgerEntryRecord, handle.id)
    assert entry is not None and entry.state == "settled" and entry.service_tier == "flex"
    assert 0 < entry.cost_usd < entry.standard_cost_usd
    assert entry.cost_usd == result.cost


def test_a_near_deadline_is_never_waited_past(peak_pipeline: Pipeline) -> None:
    """Given a low job whose deadline comes before the window, it is released in time."""
    deadline = utcnow() + timedelta(minutes=10)
    handle = peak_pipeline.queue.submit(
        simple_job(1, priority="low", deadline=deadline.isoformat())
    )
    urgent = peak_pipeline.queue.submit(
        simple_job(2, priority="low", deadline=(utcnow() + timedelta(seconds=30)).isoformat())
    )

    held = handle.status()
    assert held.status is JobStatus.DEFERRED and held.release_after is not None
    expected_run = timedelta(seconds=peak_pipeline.settings.expected_run_s_default)
    assert held.release_after <= deadline - expected_run
    assert urgent.status().status is JobStatus.QUEUED  # too close to hold at all

    # When its release time comes, even outside the window, release_deferred takes it.
    published: list[JobRef] = []
    released = release_deferred(
        peak_pipeline.queue.sessions,
        published.extend,
        now=held.release_after,
        limit=10,
        window_open=False,
    )
    assert [r.job_id for r in released] == [handle.id]


def test_deferred_jobs_survive_a_redis_flush(peak_pipeline: Pipeline) -> None:
    """Given deferred jobs, when Redis loses everything, they still run on release."""
    handles = peak_pipeline.queue.submit_many([simple_job(i, priority="low") for i in range(5)])
    redis.Redis.from_url(peak_pipeline.settings.redis_url).flushdb()

    peak_pipeline.start_worker(env=ALL_DAY)
    _run_beat_task(peak_pipeline)

    results = peak_pipeline.queue.wait([h.id for h in handles], timeout=30)
    assert {r.status for r in results.values()} == {JobStatus.SUCCEEDED}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_release_runs_at_once_release_each_job_once(
    request: pytest.FixtureRequest, backend: str, redis_url: str, tmp_path: Path
) -> None:
    """Given 200 deferred jobs, two release_deferred runs at the same moment (two beats by
    mistake) publish every job exactly once between them."""
    database_url = request.getfixturevalue(f"{backend}_url")
    with running_pipeline(
        redis_url, database_url, tmp_path, offpeak_windows=window_excluding_now()
    ) as pipeline:
        handles = pipeline.queue.submit_many([simple_job(i, priority="low") for i in range(200)])
        assert {h.status().status for h in handles[:3]} == {JobStatus.DEFERRED}
        sessions = get_sessionmaker(database_url)
        start = threading.Barrier(2)
        published: list[list[str]] = [[], []]

        def run(index: int) -> None:
            def publish(released: Sequence[JobRef]) -> None:
                published[index].extend(r.job_id for r in released)

            start.wait()
            for _ in range(10):
                release_deferred(sessions, publish, now=utcnow(), limit=25, window_open=True)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    everything = published[0] + published[1]
    assert len(everything) == 200 and set(everything) == {h.id for h in handles}
