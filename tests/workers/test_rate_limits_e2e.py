"""Shared provider rate limits across three real worker processes, against the local server.

The server enforces 1,200 requests/minute on one model (a token bucket holding one second's
worth, as real APIs quantise per-minute limits) and records when each request arrived, so the
rate and the 429s below are what the workers really did.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentqueue.jobs import JobResult, JobStatus
from agentqueue.ratelimit.limits_file import load_rate_limits
from agentqueue.ratelimit.model_stats import collect_model_stats
from agentqueue.testing.llm_server import LLMTestServer
from agentqueue.testing.server_counters import Arrival
from tests.support.pipeline import Pipeline, simple_job
from tests.workers.test_openai_provider_e2e import API_KEY, openai_env

MODEL = "gpt-4o-mini"
RPM = 1200
JOBS = 600  # 30 s at 1,200/min
WINDOW_S = 10.0


@pytest.fixture
def limited_server() -> Iterator[LLMTestServer]:
    with LLMTestServer(api_key=API_KEY, latency_ms=20, limits={MODEL: (RPM, None)}) as server:
        yield server


def _window_counts(arrivals: list[Arrival]) -> list[int]:
    """Requests per full 10-second window from the first arrival (a partial last one is left
    out: the run ends when the jobs do, not on a window boundary)."""
    times = sorted(a.at for a in arrivals)
    start, end = times[0], times[-1]
    counts = []
    k = 0
    while start + (k + 1) * WINDOW_S <= end:
        low, high = start + k * WINDOW_S, start + (k + 1) * WINDOW_S
        counts.append(sum(1 for t in times if low <= t < high))
        k += 1
    return counts


def _run(
    pipeline: Pipeline, server: LLMTestServer, env: dict[str, str], limits: Path | None = None
) -> list[dict[str, Any]]:
    """Run the jobs; `agentqueue stats`' model rows as they were halfway through."""
    for index in range(3):
        pipeline.start_worker(env=openai_env(server, **env), concurrency=16, name=f"rl{index}")
    handles = pipeline.queue.submit_many([simple_job(i) for i in range(JOBS)])
    halfway: list[dict[str, Any]] = []
    done: list[JobResult] = []

    def sample(result: JobResult) -> None:
        done.append(result)
        if len(done) == JOBS // 2:
            halfway.extend(collect_model_stats(pipeline.queue.redis, load_rate_limits(limits)))

    results = pipeline.queue.wait([h.id for h in handles], timeout=180, on_result=sample)
    failed = [r for r in results.values() if r.status is not JobStatus.SUCCEEDED]
    assert not failed, failed[0]
    assert {r.model for r in results.values()} == {MODEL}
    return halfway


def test_three_workers_hold_a_configured_limit_without_429s(
    pipeline: Pipeline, limited_server: LLMTestServer, tmp_path: Path
) -> None:
    """Given 1,200 RPM on the server and the same limit in the rate-limits file, when three
    worker processes run 600 jobs, then no job fails, at most 1% of requests get 429, and
    every full 10-second window at the server holds 200 requests within 5%."""
    limits = tmp_path / "limits.json"
    limits.write_text(json.dumps({"limits": [{"provider": "openai", "model": MODEL, "rpm": RPM}]}))

    halfway = _run(
        pipeline,
        limited_server,
        {"AGENTQUEUE_RATE_LIMITS_FILE": str(limits), "AGENTQUEUE_RATE_LIMIT_BURST_S": "0.2"},
        limits,
    )

    arrivals = limited_server.arrivals
    refused = [a for a in arrivals if a.fault == "rate_limited"]
    assert len(refused) <= 0.01 * len(arrivals), (len(refused), len(arrivals))
    counts = _window_counts(arrivals)
    print(f"configured limit: {len(arrivals)} requests, {len(refused)} got 429, per 10 s: {counts}")
    expected = RPM / 60 * WINDOW_S
    assert len(counts) >= 2, counts
    assert all(abs(c - expected) <= 0.05 * expected for c in counts), counts
    # Halfway through, stats showed the limit, a minute's use near it and jobs waiting.
    (row,) = halfway
    assert (row["model"], row["rpm_limit"]) == (MODEL, RPM)
    assert row["limit_source"].startswith("settings")  # the server's headers agree with it
    assert 0.8 * JOBS / 2 <= row["requests_last_minute"] <= JOBS
    assert row["waiting"] > 0 and row["breaker"] == "closed"


def test_limits_learned_from_headers_stop_the_429s(
    pipeline: Pipeline, limited_server: LLMTestServer
) -> None:
    """Given the same server and NO configured limit, when three workers run 600 jobs, then
    the first replies' x-ratelimit-* headers and 429s teach the shared limiter the limit: no
    job fails, and after the first 5 s (the issue's "first minute", scaled to this 30-second
    run) under 5% of requests get 429."""
    halfway = _run(pipeline, limited_server, {"AGENTQUEUE_RATE_LIMIT_BURST_S": "0.2"})

    arrivals = sorted(limited_server.arrivals, key=lambda a: a.at)
    settled = [a for a in arrivals if a.at >= arrivals[0].at + 5.0]
    refused = [a for a in settled if a.fault == "rate_limited"]
    total_refused = sum(a.fault == "rate_limited" for a in arrivals)
    print(
        f"learned limit: {len(arrivals)} requests, {total_refused} got 429; after 5 s "
        f"{len(refused)} of {len(settled)}; per 10 s: {_window_counts(arrivals)}"
    )
    assert len(settled) >= 400
    assert len(refused) < 0.05 * len(settled), (len(refused), len(settled))
    # Nothing was configured: the limit the workers kept came from the server's headers.
    (row,) = halfway
    assert (row["rpm_limit"], row["limit_source"]) == (RPM, "headers")
