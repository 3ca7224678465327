"""Real workers with `AGENTQUEUE_PROVIDER=openai` against the local OpenAI-compatible server.

The server runs in the test process; the workers are real Celery processes that reach it over
TCP, so its arrival times, fault hits and accepted connections are what the workers did.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from agentqueue.jobs import JobStatus
from agentqueue.testing.llm_server import LLMTestServer
from agentqueue.workers.batch_sizes import BatchSizes
from tests.support.pipeline import Pipeline, simple_job

API_KEY = "sk-e2e-test-key-9f3c2a7d"
RATE_LIMIT_FAULT = "status=429,retry_after=1,first=1"
ALWAYS_FAILING_FAULT = "status=500,contains=FAIL"


@pytest.fixture
def llm_server() -> Iterator[LLMTestServer]:
    with LLMTestServer(api_key=API_KEY) as server:
        yield server


def openai_env(server: LLMTestServer, **extra: str) -> dict[str, str]:
    """Worker settings that send every job to `server` through the OpenAI-compatible provider."""
    return {
        "AGENTQUEUE_PROVIDER": "openai",
        "AGENTQUEUE_OPENAI_BASE_URL": server.base_url,
        "AGENTQUEUE_OPENAI_API_KEY": API_KEY,
        # Tiny backoff, so any wait of a second or more can only come from Retry-After.
        "AGENTQUEUE_PROVIDER_BACKOFF_BASE_S": "0.01",
        "AGENTQUEUE_PROVIDER_BACKOFF_MAX_S": "0.05",
        **extra,
    }


def test_a_429_with_retry_after_is_retried_after_a_second_and_succeeds(
    pipeline: Pipeline, llm_server: LLMTestServer
) -> None:
    """Given a server whose first answer is 429 with `Retry-After: 1`, when a job runs, then
    the worker calls again no sooner than a second later and the job succeeds."""
    llm_server.add_fault(RATE_LIMIT_FAULT)
    pipeline.start_worker(env=openai_env(llm_server))

    result = pipeline.queue.submit(simple_job(1)).get(timeout=30)

    assert result.status is JobStatus.SUCCEEDED, result.error
    assert result.provider == "openai" and result.output
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
    assert result.attempts == 1  # retried inside the provider call, not by redelivery
    first, second = llm_server.arrivals
    assert first.fault == RATE_LIMIT_FAULT and second.fault is None
    assert second.at - first.at >= 1.0
    assert second.at - first.at < 5.0


def test_a_job_failing_500_every_time_fails_alone_in_its_batch(
    pipeline: Pipeline, llm_server: LLMTestServer
) -> None:
    """Given a server that answers 500 to any request containing FAIL, when a batch of five
    single messages and a packed batch of five each hold one such job, then that job ends
    `failed` with `provider_error` after all its attempts, and the other jobs succeed."""
    llm_server.add_fault(ALWAYS_FAILING_FAULT)
    max_attempts = 3

    def group(agent_type: str, start: int) -> list[dict[str, object]]:
        jobs = [simple_job(start + i, agent_type=agent_type) for i in range(5)]
        jobs[2]["messages"] = [{"role": "user", "content": f"please FAIL {start}"}]
        return jobs

    single = pipeline.queue.submit_many(group("single-messages", 0), packed=False)
    packed = pipeline.queue.submit_many(group("packed", 100), packed=True)
    pipeline.start_worker(
        env=openai_env(
            llm_server,
            AGENTQUEUE_PROVIDER_MAX_ATTEMPTS=str(max_attempts),
            AGENTQUEUE_BATCH_SIZE="5",
            AGENTQUEUE_BATCH_TIMEOUT_MS="1000",
        ),
        concurrency=16,
        loglevel="INFO",
    )
    results = pipeline.queue.wait([h.id for h in single + packed], timeout=60)

    for handles in (single, packed):
        failed = results[handles[2].id]
        assert failed.status is JobStatus.FAILED
        assert failed.error is not None and failed.error.code == "provider_error"
        assert f"{max_attempts} attempts" in failed.error.message
        assert failed.attempts == 1 and failed.output is None
        others = [results[h.id] for i, h in enumerate(handles) if i != 2]
        assert {r.status for r in others} == {JobStatus.SUCCEEDED}
        assert all(r.output and r.provider == "openai" for r in others)
    # Each failing job reached the server exactly max_attempts times; the others once.
    fault_hits = [a for a in llm_server.arrivals if a.fault == ALWAYS_FAILING_FAULT]
    assert len(fault_hits) == 2 * max_attempts
    assert llm_server.requests_received == 2 * max_attempts + 8
    # The five single messages really ran in the aggregator's groups: the first alone (a lone
    # job never waits), the others gathered behind it while it ran.
    sizes = BatchSizes(pipeline.queue.redis).read(("single-messages", "gpt-4o-mini"))
    assert sum(size * count for size, count in sizes.items()) == 5 and max(sizes) >= 2, sizes
    # The key is sent to the server but never written to the worker's log or to a result.
    assert API_KEY not in pipeline.worker_log()
    assert all(API_KEY not in r.model_dump_json() for r in results.values())


def test_500_jobs_open_no_more_connections_than_the_pool_holds(
    pipeline: Pipeline, llm_server: LLMTestServer
) -> None:
    """Given a worker with 32 threads and a provider pool of min(12, 6 per host) = 6
    connections, when 500 jobs run (half single messages, half packed), then the server
    accepts at most 6 TCP connections and every job succeeds on its first call."""
    pool_size = 6
    single = pipeline.queue.submit_many([simple_job(i) for i in range(250)], packed=False)
    packed = pipeline.queue.submit_many([simple_job(i) for i in range(250, 500)], packed=True)
    pipeline.start_worker(
        env=openai_env(
            llm_server,
            AGENTQUEUE_HTTP_MAX_CONNECTIONS="12",
            AGENTQUEUE_HTTP_MAX_CONNECTIONS_PER_HOST=str(pool_size),
        ),
        concurrency=32,
    )

    results = pipeline.queue.wait([h.id for h in single + packed], timeout=90)

    assert len(results) == 500
    assert {r.status for r in results.values()} == {JobStatus.SUCCEEDED}
    assert llm_server.requests_served == 500
    assert 1 <= llm_server.connections_accepted <= pool_size
    # The pool was used concurrently (not one request at a time), and never beyond its size.
    assert 1 < llm_server.max_in_flight <= pool_size


def test_a_job_behind_a_group_in_calls_longer_than_the_batch_timeout_calls_at_once(
    pipeline: Pipeline,
) -> None:
    """Given a worker with a 1 s batch timeout that has learned its provider takes 1.5 s a
    call, when job b arrives (nobody else coming) while job a's group is in its call, then
    b's group neither waits for a's nor for the timeout: b's request reaches the server
    within half a second, while a's is still in flight."""
    with LLMTestServer(api_key=API_KEY, latency_ms=1500) as server:
        env = openai_env(server, AGENTQUEUE_BATCH_TIMEOUT_MS="1000")
        pipeline.start_worker(env=env, concurrency=4)
        warm = pipeline.queue.submit(simple_job(0)).get(timeout=30)
        assert warm.status is JobStatus.SUCCEEDED, warm.error
        server.reset()
        first = pipeline.queue.submit(simple_job(1))
        deadline = time.monotonic() + 10
        while server.stats()["in_flight"] < 1:
            assert time.monotonic() < deadline, "the first job's call never reached the server"
            time.sleep(0.005)
        submitted_at = time.monotonic()  # the clock of the server's arrivals (in-process)
        second = pipeline.queue.submit(simple_job(2))
        results = pipeline.queue.wait([first.id, second.id], timeout=30)
        assert {r.status for r in results.values()} == {JobStatus.SUCCEEDED}
        _, second_arrival = server.arrivals
        assert second_arrival.at - submitted_at < 0.5
        assert server.max_in_flight == 2
