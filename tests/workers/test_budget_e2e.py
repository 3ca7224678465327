"""Budgets enforced on the real path: right-sizing under pressure, refusal at the limit,
one charge per job, and no provider call while the ledger database is down."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import redis
from sqlalchemy import select

from agentqueue.budget.budget_limits import set_budget
from agentqueue.budget.gate import BudgetGate
from agentqueue.constants import BUDGET_UTILISATION_KEY, TASK_BUDGET_ALERTS
from agentqueue.jobs import AgentJob, JobStatus, utcnow
from agentqueue.persistence.job_table import JobRecord
from agentqueue.persistence.ledger_tables import BudgetAlertRecord, LedgerEntryRecord
from agentqueue.usage import TokenUsage
from tests.budget.conftest import admit, settle
from tests.support.pipeline import Pipeline, simple_job

AUTO = {
    "model": "auto",
    "requirements": {"min_quality": 0.6},
    "params": {"max_tokens": 16},
}


def _spent(pipeline: Pipeline, tenant: str) -> Decimal:
    with pipeline.queue.sessions() as session:
        costs = session.scalars(
            select(LedgerEntryRecord.cost_usd).where(LedgerEntryRecord.tenant == tenant)
        ).all()
    return sum(costs, Decimal(0))


def test_auto_job_is_right_sized_at_80_percent_and_refused_at_100(pipeline: Pipeline) -> None:
    """Given tenant acme at 80% of its daily budget, an auto job runs on the cheapest model
    that meets its requirements; at 100%, a job ends rejected with budget_exceeded."""
    pipeline.start_worker()
    warmup = pipeline.queue.submit_many(
        [simple_job(i, tenant="acme", model="gpt-4o") for i in range(4)], packed=False
    )
    pipeline.queue.wait([h.id for h in warmup], timeout=30)
    spent = _spent(pipeline, "acme")
    assert spent > 0

    # Normally (no budget pressure) the weighted choice is used.
    relaxed = pipeline.queue.submit(simple_job(10, tenant="globex", **AUTO)).get(timeout=30)
    assert relaxed.status is JobStatus.SUCCEEDED and relaxed.model_reason

    set_budget(
        pipeline.queue.sessions,
        "tenant:acme",
        "daily",
        spent / Decimal("0.8"),
        now=utcnow(),
        timezone=pipeline.settings.timezone,
    )
    squeezed = pipeline.queue.submit(simple_job(11, tenant="acme", **AUTO)).get(timeout=30)
    assert squeezed.status is JobStatus.SUCCEEDED
    assert squeezed.budget_action == "right_size"
    gate = BudgetGate(pipeline.queue.sessions, pipeline.settings)
    qualifying = [m for m in gate.catalog.models if m.quality >= 0.6]
    cheapest = min(qualifying, key=lambda m: gate.prices.price(m.id, "standard").cost(20, 16))
    assert squeezed.model == cheapest.id
    assert relaxed.model != squeezed.model or relaxed.model == cheapest.id

    set_budget(
        pipeline.queue.sessions,
        "tenant:acme",
        "daily",
        _spent(pipeline, "acme"),
        now=utcnow(),
        timezone=pipeline.settings.timezone,
    )
    refused = pipeline.queue.submit(simple_job(12, tenant="acme", priority="critical")).get(
        timeout=30
    )
    assert refused.status is JobStatus.REJECTED
    assert refused.error is not None and refused.error.code == "budget_exceeded"
    assert "tenant:acme" in refused.error.message and "daily" in refused.error.message
    assert refused.output is None and refused.cost == 0


def test_each_job_is_charged_once_at_the_real_price(pipeline: Pipeline) -> None:
    """Given finished jobs, the ledger holds one settled entry per job, costing what
    genai-prices says their reported usage costs."""
    pipeline.start_worker()
    handles = pipeline.queue.submit_many([simple_job(i, model="gpt-4o-mini") for i in range(30)])
    results = pipeline.queue.wait([h.id for h in handles], timeout=60)
    gate = BudgetGate(pipeline.queue.sessions, pipeline.settings)
    price = gate.prices.price("gpt-4o-mini", "standard")

    with pipeline.queue.sessions() as session:
        entries = {e.job_id: e for e in session.scalars(select(LedgerEntryRecord))}
    assert set(entries) == set(results)
    for job_id, result in results.items():
        entry = entries[job_id]
        assert entry.state == "settled"
        expected = price.cost(result.usage.input_tokens, result.usage.output_tokens)
        assert entry.cost_usd == Decimal(result.cost_usd)
        assert abs(entry.cost_usd - expected) < Decimal("0.0000000001")


def test_repeated_deterministic_job_is_a_free_cache_hit_with_avoided_cost(
    pipeline: Pipeline,
) -> None:
    """Given a deterministic job that ran, the same request again comes from the cache at
    $0, and the ledger records the cost it avoided."""
    pipeline.start_worker()
    # Room for the whole answer: a truncated output is never cached.
    request = {"params": {"temperature": 0, "max_tokens": 256}, "tenant": "acme"}
    first = pipeline.queue.submit(simple_job(1, **request)).get(timeout=30)
    again = pipeline.queue.submit(simple_job(1, **request)).get(timeout=30)
    other_tenant = pipeline.queue.submit(simple_job(1, **{**request, "tenant": "globex"})).get(
        timeout=30
    )

    assert first.cache_tier is None and first.cost > 0
    assert again.cache_tier in {"l1", "l2", "l3"} and again.cost == 0
    assert again.output == first.output
    assert other_tenant.cache_tier is None and other_tenant.cost > 0
    with pipeline.queue.sessions() as session:
        entry = session.get(LedgerEntryRecord, again.job_id)
    assert entry is not None and entry.state == "cache_hit"
    assert entry.cost_usd == 0 and entry.avoided_usd == first.cost


def test_cache_redis_down_jobs_still_succeed(pipeline: Pipeline, tmp_path: Path) -> None:
    """Given the cache's Redis unreachable, jobs run anyway and the tier errors are logged."""
    pipeline.start_worker(
        env={
            "AGENTQUEUE_CACHE_REDIS_URL": "redis://127.0.0.1:1/0",
            "AGENTQUEUE_CACHE_REDIS_TIMEOUT_S": "0.2",
        },
        loglevel="INFO",
    )
    handles = pipeline.queue.submit_many(
        [simple_job(i, params={"temperature": 0}) for i in range(10)], packed=False
    )
    results = pipeline.queue.wait([h.id for h in handles], timeout=60)
    assert {r.status for r in results.values()} == {JobStatus.SUCCEEDED}
    assert "l2" in pipeline.worker_log().lower()


def test_budget_alerts_publish_utilisation_for_the_autoscalers(pipeline: Pipeline) -> None:
    """Given a budget at 96% of its limit, beat's budget_alerts task (on a real worker)
    publishes that utilisation where every worker's autoscaler reads it, and records one
    alert per crossed threshold."""
    pipeline.start_worker()
    done = pipeline.queue.submit_many([simple_job(i, tenant="acme") for i in range(3)])
    pipeline.queue.wait([h.id for h in done], timeout=30)
    set_budget(
        pipeline.queue.sessions,
        "tenant:acme",
        "daily",
        _spent(pipeline, "acme") / Decimal("0.96"),
        now=utcnow(),
        timezone=pipeline.settings.timezone,
    )
    client = redis.Redis.from_url(pipeline.settings.redis_url)

    for _ in range(2):  # a second run must not alert again
        pipeline.queue.celery.send_task(TASK_BUDGET_ALERTS, queue="agentqueue.critical")
        deadline = time.monotonic() + 15
        while client.get(BUDGET_UTILISATION_KEY) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)

    published = client.get(BUDGET_UTILISATION_KEY)
    assert published is not None and Decimal(published.decode()) >= Decimal("0.95")
    with pipeline.queue.sessions() as session:
        alerts = session.scalars(select(BudgetAlertRecord)).all()
    keys = {(a.scope, a.period, a.window_start, a.threshold_bp) for a in alerts}
    assert len(alerts) == len(keys) >= 1


def test_a_job_already_charged_is_never_called_again(pipeline: Pipeline) -> None:
    """Given a job the ledger has already settled (its record lost by hand), the worker
    refuses to call the provider a second time and says why."""
    handle = pipeline.queue.submit(simple_job(1))
    with pipeline.queue.sessions() as session:
        record = session.get(JobRecord, handle.id)
        assert record is not None
        job = AgentJob.model_validate_json(record.payload)
    gate = BudgetGate(pipeline.queue.sessions, pipeline.settings)
    admit(gate, [job])
    settle(gate, {job.id: TokenUsage(input_tokens=10, output_tokens=5)})

    pipeline.start_worker()
    result = handle.get(timeout=30)

    assert result.status is JobStatus.FAILED
    assert result.error is not None and result.error.code == "already_settled"
    with pipeline.queue.sessions() as session:
        entry = session.get(LedgerEntryRecord, job.id)
    assert entry is not None and entry.input_tokens == 10  # charged once, as settled
