"""Deferred and low-priority work through provider batches, on real workers, a real beat and
the local server's OpenAI Batch API: batch price, exactly-once submission across crashes,
expiry, cancellation for a deadline and per-line failures."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from agentqueue.budget.pricing import PriceBook, to_money
from agentqueue.jobs import JobResult, JobStatus, utcnow
from agentqueue.persistence.batch_tables import ProviderBatchRecord
from agentqueue.persistence.ledger_tables import LedgerEntryRecord
from agentqueue.testing.llm_server import LLMTestServer
from agentqueue.workers.process import BeatProcess
from tests.scheduler.test_release import window_excluding_now
from tests.support.pipeline import Pipeline, running_pipeline, simple_job

API_KEY = "sk-batch-test-key-5e1d"
ALL_DAY = "00:00-24:00"


@pytest.fixture
def llm_server() -> Iterator[LLMTestServer]:
    with LLMTestServer(api_key=API_KEY) as server:
        yield server


def batch_env(server: LLMTestServer, **extra: str) -> dict[str, str]:
    """Workers and beat on the local server's batch API, with a schedule that runs in seconds."""
    return {
        "AGENTQUEUE_PROVIDER": "openai",
        "AGENTQUEUE_OPENAI_BASE_URL": server.base_url,
        "AGENTQUEUE_OPENAI_API_KEY": API_KEY,
        "AGENTQUEUE_BATCH_API": "on",  # a custom endpoint: only on when told
        "AGENTQUEUE_OFFPEAK_WINDOWS": ALL_DAY,
        "AGENTQUEUE_BEAT_RELEASE_S": "1",
        "AGENTQUEUE_BEAT_BATCHES_S": "1",
        "AGENTQUEUE_BATCH_POLL_S": "0.5",
        "AGENTQUEUE_BATCH_POLL_MAX_S": "1",
        # Each remote call is cut at a third of the hold (4 s), so a submit's two calls end
        # while it holds the batch; a dead holder's batch is taken again 12 s later.
        "AGENTQUEUE_BATCH_HOLD_S": "12",
        "AGENTQUEUE_BATCH_EXPECTED_S": "20",
        "AGENTQUEUE_EXPECTED_RUN_S_DEFAULT": "5",
        **extra,
    }


@pytest.fixture(params=["postgres", "sqlite"])
def peak_pipeline(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> Iterator[Pipeline]:
    """A client that sees peak hours now (so `low` jobs are deferred at submit), on each
    database."""
    database_url = str(request.getfixturevalue(f"{request.param}_url"))
    with running_pipeline(
        redis_url, database_url, tmp_path, offpeak_windows=window_excluding_now()
    ) as pipeline:
        yield pipeline


@pytest.fixture
def start_beat(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], BeatProcess]]:
    started: list[BeatProcess] = []

    def start(env: dict[str, str]) -> BeatProcess:
        directory = tmp_path / f"beat{len(started)}"  # a killed beat's schedule file stays its own
        directory.mkdir()
        beat = BeatProcess(env, directory).start()
        started.append(beat)
        return beat

    yield start
    for beat in started:
        beat.stop()


def entries(pipeline: Pipeline, ids: list[str]) -> dict[str, LedgerEntryRecord]:
    with pipeline.queue.sessions() as session:
        rows = session.scalars(select(LedgerEntryRecord).where(LedgerEntryRecord.job_id.in_(ids)))
        return {row.job_id: row for row in rows}


def price_of(result: JobResult, tier: str) -> Decimal:
    priced = PriceBook().price(result.model or "", tier)
    return to_money(priced.cost(result.usage.input_tokens, result.usage.output_tokens))


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.1)


def batch_states(pipeline: Pipeline) -> list[str]:
    with pipeline.queue.sessions() as session:
        return list(session.scalars(select(ProviderBatchRecord.state)))


def test_a_released_deferred_job_runs_in_a_provider_batch_at_the_batch_price(
    peak_pipeline: Pipeline,
    llm_server: LLMTestServer,
    start_beat: Callable[[dict[str, str]], BeatProcess],
) -> None:
    """Given low jobs deferred at submit, when beat releases them inside the window, then they
    run in one provider batch at the local server (no live call), each charged the batch price
    of its usage, with the standard price beside it, and result and ledger both say `batch`."""
    handles = [
        peak_pipeline.queue.submit(simple_job(i, priority="low", params={"max_tokens": 40}))
        for i in range(3)
    ]
    assert {h.status().status for h in handles} == {JobStatus.DEFERRED}
    env = batch_env(llm_server)
    peak_pipeline.start_worker(env=env)
    start_beat({**peak_pipeline.env, **env})

    results = peak_pipeline.queue.wait([h.id for h in handles], timeout=90)

    stats = llm_server.stats()
    assert stats["batches_created"] == 1 and stats["batch_lines_submitted"] == 3
    assert stats["requests_received"] == 0  # no live chat call
    ledger = entries(peak_pipeline, list(results))
    for job_id, result in results.items():
        assert result.status is JobStatus.SUCCEEDED and result.output
        assert result.service_tier == "batch"
        entry = ledger[job_id]
        assert (entry.state, entry.service_tier) == ("settled", "batch")
        assert entry.cost_usd == result.cost == price_of(result, "batch")
        assert entry.standard_cost_usd == price_of(result, "standard") > entry.cost_usd
    assert batch_states(peak_pipeline) == ["settled"]


def test_killed_beat_tasks_never_submit_a_job_twice_nor_lose_one(
    pipeline: Pipeline,
    llm_server: LLMTestServer,
    start_beat: Callable[[dict[str, str]], BeatProcess],
) -> None:
    """Given low jobs waiting for a provider batch: beat and the worker running its submit task
    are SIGKILLed after the batch was recorded and while its request file is on its way; the next
    one is SIGKILLed while the batch is being created remotely (the server creates it anyway);
    the next while it polls. Then every job is submitted exactly once (counted at the server),
    none is lost, and each is settled once at the batch price."""
    env = batch_env(llm_server)
    llm_server.batches.configure(submit_delay_s=2, completion_delay_s=1)
    beat_env = {**pipeline.env, **env}
    first = pipeline.start_worker(env=env)
    beat = start_beat(beat_env)
    handles = pipeline.queue.submit_many(
        [simple_job(i, priority="low", params={"max_tokens": 30}) for i in range(6)]
    )

    # 1. Recorded and marked `submitting`, the upload still in flight: beat and the worker
    # running its task crash.
    wait_for(lambda: batch_states(pipeline) == ["submitting"], timeout=90)
    first.kill()
    beat.kill()
    assert llm_server.stats()["batches_created"] == 0
    start_beat(beat_env)

    # 2. The next worker finds nothing remotely and submits; crash while the batch is created.
    second = pipeline.start_worker(env=env)
    wait_for(lambda: llm_server.batches.creates_started == 1, timeout=90)
    second.kill()
    wait_for(lambda: llm_server.stats()["batches_created"] == 1, timeout=10)

    # 3. The next worker finds that batch by its metadata, records it and polls: crash mid-poll.
    llm_server.batches.configure(submit_delay_s=0, poll_delay_s=2)
    polls = llm_server.stats()["batch_status_reads"]
    third = pipeline.start_worker(env=env)
    wait_for(lambda: llm_server.stats()["batch_status_reads"] > polls, timeout=90)
    third.kill()

    llm_server.batches.configure(poll_delay_s=0)
    pipeline.start_worker(env=env)
    results = pipeline.queue.wait([h.id for h in handles], timeout=90)

    stats = llm_server.stats()
    assert stats["batches_created"] == llm_server.batches.creates_started == 1
    assert sorted(stats["batch_lines_by_text"].values()) == [1] * 6
    assert stats["requests_received"] == 0
    ledger = entries(pipeline, list(results))
    for job_id, result in results.items():
        assert result.status is JobStatus.SUCCEEDED and result.service_tier == "batch"
        assert ledger[job_id].state == "settled"
        assert ledger[job_id].cost_usd == result.cost == price_of(result, "batch")
    assert batch_states(pipeline) == ["settled"]


def test_expiry_deadline_cancellation_and_line_failures_end_every_job_once(
    pipeline: Pipeline,
    llm_server: LLMTestServer,
    start_beat: Callable[[dict[str, str]], BeatProcess],
) -> None:
    """Given low jobs sent to provider batches: a batch with per-line failures (400: the job
    fails; 500: retried on the standard path), one that expires, and one cancelled because a
    member's deadline nears (and a job whose deadline is too close to batch at all): every job
    ends final, is charged once (batch price if its line ran, standard price if it ran live),
    and every deadline is kept."""
    env = batch_env(llm_server, AGENTQUEUE_BATCH_DEADLINE_MARGIN_S="52")
    pipeline.start_worker(env=env)
    start_beat({**pipeline.env, **env})
    low = {"priority": "low", "params": {"max_tokens": 30}}

    # Per-line failures.
    failing = pipeline.queue.submit_many(
        [
            simple_job(1, **low),
            simple_job(2, **low, messages=[{"role": "user", "content": "FAIL-LINE-400 two"}]),
            simple_job(3, **low, messages=[{"role": "user", "content": "FAIL-LINE-500 three"}]),
        ]
    )
    phase_one = pipeline.queue.wait([h.id for h in failing], timeout=90)
    ok, bad, retried = (phase_one[h.id] for h in failing)
    assert ok.status is JobStatus.SUCCEEDED and ok.service_tier == "batch"
    assert bad.status is JobStatus.FAILED and bad.error and bad.error.code == "provider_error"
    assert retried.status is JobStatus.SUCCEEDED and retried.service_tier == "standard"
    assert llm_server.stats()["requests_received"] == 1  # only the retried line ran live

    # Expiry: half the lines ran before the batch expired; the rest run on the standard path.
    llm_server.batches.configure(completion_delay_s=600, expire_after_s=1)
    expiring = pipeline.queue.submit_many([simple_job(10 + i, **low) for i in range(4)])
    phase_two = pipeline.queue.wait([h.id for h in expiring], timeout=90)
    tiers = sorted(r.service_tier or "" for r in phase_two.values())
    assert tiers == ["batch", "batch", "standard", "standard"]
    assert llm_server.stats()["requests_received"] == 3

    # A deadline: batchable (60 s away) but cancelled 52 s before it; one too close to batch.
    llm_server.batches.configure(expire_after_s=None)
    deadline = utcnow() + timedelta(seconds=60)
    near = utcnow() + timedelta(seconds=15)
    timed = pipeline.queue.submit_many(
        [simple_job(20 + i, **low, deadline=deadline.isoformat()) for i in range(2)]
        + [simple_job(30, **low, deadline=near.isoformat())]
    )
    phase_three = pipeline.queue.wait([h.id for h in timed], timeout=60)
    cancelled_pair = [phase_three[h.id] for h in timed[:2]]
    assert sorted(r.service_tier or "" for r in cancelled_pair) == ["batch", "standard"]
    assert phase_three[timed[2].id].service_tier == "standard"
    for result in phase_three.values():
        assert result.finished_at is not None and result.finished_at < deadline
    assert phase_three[timed[2].id].finished_at < near  # type: ignore[operator]

    everything = {**phase_one, **phase_two, **phase_three}
    ledger = entries(pipeline, list(everything))
    for job_id, result in everything.items():
        assert result.is_final
        entry = ledger[job_id]
        if result.status is JobStatus.FAILED:
            assert entry.state == "released" and entry.cost_usd == 0
            continue
        assert result.status is JobStatus.SUCCEEDED
        assert entry.state == "settled" and entry.service_tier == result.service_tier
        assert entry.cost_usd == result.cost == price_of(result, entry.service_tier)
    lines = llm_server.stats()["batch_lines_by_text"]
    assert set(lines.values()) == {1}  # no request went into two batches
    assert set(batch_states(pipeline)) == {"settled"}
