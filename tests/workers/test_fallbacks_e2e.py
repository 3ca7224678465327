"""Outages, fallbacks re-admitted by the budget, and a gateway serving only two models:
real worker processes against the local OpenAI-compatible server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from agentqueue.budget.budget_limits import set_budget
from agentqueue.budget.gate import BudgetGate
from agentqueue.jobs import JobStatus, utcnow
from agentqueue.persistence.ledger_tables import LedgerEntryRecord
from agentqueue.testing.llm_server import LLMTestServer
from tests.support.pipeline import Pipeline, simple_job
from tests.workers.test_openai_provider_e2e import API_KEY, openai_env

PRIMARY = "gpt-4o-mini"
FALLBACK = "claude-haiku-4-5"
PRICEY_FALLBACK = "gpt-4o"
# The outage lasts 30 s; 8 s shows the same thing (the breaker cools for 1 s between
# probes) in a quarter of the wall time.
OUTAGE_S = 8.0


@pytest.fixture
def llm_server() -> Iterator[LLMTestServer]:
    with LLMTestServer(api_key=API_KEY, latency_ms=10) as server:
        yield server


def test_an_outage_moves_fallback_jobs_and_holds_the_others_until_recovery(
    pipeline: Pipeline, llm_server: LLMTestServer
) -> None:
    """Given the primary model down for 8 s, then: jobs naming a fallback finish on it,
    charged at its price, their result saying why; a job whose fallback would cross its
    tenant's budget at the fallback's price is refused by the ladder (budget_exceeded); jobs
    without a fallback neither fail nor move: they wait and finish on the primary after it
    recovers."""
    pipeline.start_worker(
        env=openai_env(
            llm_server,
            AGENTQUEUE_PROVIDER_MAX_ATTEMPTS="2",
            AGENTQUEUE_BREAKER_FAILURE_THRESHOLD="3",
            AGENTQUEUE_BREAKER_COOLING_S="1",
        ),
        concurrency=32,
    )
    # Room for the primary's worst case ($0.0006) but not the pricey fallback's ($0.0103).
    set_budget(
        pipeline.queue.sessions,
        "tenant:tight",
        "daily",
        Decimal("0.003"),
        now=utcnow(),
        timezone=pipeline.settings.timezone,
    )
    llm_server.add_outage(PRIMARY, OUTAGE_S)
    outage_ends = time.monotonic() + OUTAGE_S
    moving = [simple_job(i, fallbacks=[FALLBACK]) for i in range(10)]
    staying = [simple_job(100 + i) for i in range(10)]
    tight = [simple_job(200, tenant="tight", fallbacks=[PRICEY_FALLBACK])]
    handles = pipeline.queue.submit_many(moving + staying + tight, packed=False)
    results = pipeline.queue.wait([h.id for h in handles], timeout=90)

    moved = [results[h.id] for h in handles[:10]]
    stayed = [results[h.id] for h in handles[10:20]]
    refused = results[handles[20].id]
    assert all(r.status is JobStatus.SUCCEEDED for r in moved), moved[0]
    assert {r.model for r in moved} == {FALLBACK}
    assert all(r.model_reason and f"fallback from {PRIMARY}" in r.model_reason for r in moved)
    assert all(r.status is JobStatus.SUCCEEDED for r in stayed), stayed[0]
    assert {r.model for r in stayed} == {PRIMARY}
    assert refused.status is JobStatus.REJECTED and refused.error is not None
    assert refused.error.code == "budget_exceeded"
    assert refused.model == PRICEY_FALLBACK

    # Charged at the fallback's own price for what it really used.
    gate = BudgetGate(pipeline.queue.sessions, pipeline.settings)
    price = gate.prices.price(FALLBACK, "standard")
    with pipeline.queue.sessions() as session:
        entries = {e.job_id: e for e in session.scalars(select(LedgerEntryRecord))}
    for result in moved:
        entry = entries[result.job_id]
        assert entry.state == "settled" and entry.model == FALLBACK
        expected = price.cost(result.usage.input_tokens, result.usage.output_tokens)
        assert abs(entry.cost_usd - expected) < Decimal("0.0000000001")
        assert entry.cost_usd == result.cost
    assert entries[refused.job_id].state == "released"

    # The primary served nothing during the outage, and the waiting jobs after it.
    served_primary = [a for a in llm_server.arrivals if a.model == PRIMARY and a.fault is None]
    assert len(served_primary) == 10
    assert all(a.at >= outage_ends - 0.5 for a in served_primary)
    # The breaker kept the waiting jobs from hammering the dead model: well under one call
    # per job per second of outage.
    failed_calls = [a for a in llm_server.arrivals if a.model == PRIMARY and a.fault]
    assert len(failed_calls) < 10 * OUTAGE_S
    # `agentqueue stats` shows the fallbacks taken from the primary and its breaker's history.
    shown = subprocess.run(
        [sys.executable, "-m", "agentqueue.cli", "stats", "--json"],
        env={**os.environ, **pipeline.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    rows = {row["model"]: row for row in json.loads(shown.stdout)["models"]}
    assert rows[PRIMARY]["fallbacks_taken"] == 11  # ten moved, one refused at its fallback
    assert rows[PRIMARY]["breaker_opened"] >= 1 and rows[PRIMARY]["breaker"] == "closed"
    assert rows[FALLBACK]["requests_last_minute"] == 10


def test_a_gateway_serving_two_models_gets_auto_jobs_only_for_those(
    pipeline: Pipeline,
) -> None:
    """Given an OpenAI-compatible gateway that serves only two models (one of them not the
    catalog's usual pick), when auto jobs of several requirement levels run, then every job
    succeeds on one of those two, and none ever reaches the gateway with another model."""
    served = ["gpt-4.1-mini", "claude-sonnet-4-0"]
    with LLMTestServer(api_key=API_KEY, models=served) as gateway:
        pipeline.start_worker(env=openai_env(gateway), concurrency=16)
        jobs = [
            simple_job(
                i,
                model="auto",
                requirements={"min_quality": q, "max_latency_ms": 5000},
            )
            for i, q in enumerate([0.0, 0.5, 0.6, 0.7, 0.8, 0.85, 0.0, 0.5])
        ]
        handles = pipeline.queue.submit_many(jobs, packed=False)
        results = pipeline.queue.wait([h.id for h in handles], timeout=60)

        assert all(r.status is JobStatus.SUCCEEDED for r in results.values()), [
            r.error for r in results.values()
        ]
        assert {r.model for r in results.values()} <= set(served)
        assert {a.model for a in gateway.arrivals} <= set(served)
        # Cheap jobs would pick a cheaper catalog model if the gateway served one.
        assert len({r.model for r in results.values()}) == 2


def test_jobs_past_the_rate_limit_wait_bound_fall_back_but_a_4xx_never_does(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """Given the primary limited to 60 RPM (settings and server) and a 0.5 s wait bound, when
    six jobs with a fallback arrive at once, then the first is served by the primary and the
    rest move to the fallback saying they were rate limited, with no 429 at the server; and a
    job the server refuses with 400 fails at once without trying its fallback."""
    bad_request = "status=400,contains=BADREQ"
    limits = tmp_path / "limits.json"
    limits.write_text(json.dumps({"limits": [{"provider": "openai", "model": PRIMARY, "rpm": 60}]}))
    with LLMTestServer(
        api_key=API_KEY, limits={PRIMARY: (60, None)}, faults=[bad_request]
    ) as server:
        pipeline.start_worker(
            env=openai_env(
                server,
                AGENTQUEUE_RATE_LIMITS_FILE=str(limits),
                AGENTQUEUE_FALLBACK_AFTER_WAIT_S="0.5",
                AGENTQUEUE_RATE_LIMIT_BURST_S="0.1",
            ),
            concurrency=16,
        )
        jobs = [simple_job(i, fallbacks=[FALLBACK]) for i in range(6)]
        bad = simple_job(99, model="gpt-4.1-mini", fallbacks=[FALLBACK])
        bad["messages"] = [{"role": "user", "content": "please BADREQ"}]
        handles = pipeline.queue.submit_many([*jobs, bad], packed=False)
        results = pipeline.queue.wait([h.id for h in handles], timeout=60)
        arrivals = server.arrivals

    ran = [results[h.id] for h in handles[:6]]
    assert all(r.status is JobStatus.SUCCEEDED for r in ran), ran
    moved = [r for r in ran if r.model == FALLBACK]
    assert len(moved) >= 4
    assert all(r.model_reason and f"{PRIMARY} rate limited" in r.model_reason for r in moved)
    assert not [a for a in arrivals if a.fault == "rate_limited"]
    refused = results[handles[6].id]
    assert refused.status is JobStatus.FAILED and refused.error is not None
    assert refused.error.code == "provider_bad_request" and refused.model == "gpt-4.1-mini"
    assert [a.model for a in arrivals if a.fault == bad_request] == ["gpt-4.1-mini"]
