"""A worker's /metrics after a real run shows the jobs, money, cache hits and budgets that the
jobs table and the ledger hold."""

from __future__ import annotations

import time
import urllib.request
from collections import defaultdict
from decimal import Decimal

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from agentqueue.budget.budget_limits import set_budget
from agentqueue.budget.savings import CACHE_LEVER_PREFIX
from agentqueue.jobs import utcnow
from agentqueue.metrics import names
from agentqueue.persistence.job_table import JobRecord
from agentqueue.persistence.ledger_tables import BudgetUsageRecord, LedgerEntryRecord
from tests.support.pipeline import Pipeline, simple_job
from tests.support.services import free_port

TEN_PLACES = Decimal("0.0000000001")


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name].append((sample.labels, sample.value))
    return samples


def as_money(value: float) -> str:
    """A float sample as the ledger's 10-place Decimal text."""
    return str(Decimal(repr(value)).quantize(TEN_PLACES))


def total(samples: list[tuple[dict[str, str], float]], **match: str) -> float:
    return sum(v for labels, v in samples if all(labels.get(k) == w for k, w in match.items()))


def test_worker_metrics_match_the_ledger(pipeline: Pipeline) -> None:
    """Given a worker serving metrics and a daily global budget, when distinct jobs run and
    then the same requests again (cache hits), the scrape holds the ledger's numbers."""
    set_budget(
        pipeline.queue.sessions,
        "global",
        "daily",
        Decimal("5"),
        now=utcnow(),
        timezone=pipeline.settings.timezone,
    )
    port = free_port()
    pipeline.start_worker(env={"AGENTQUEUE_METRICS_PORT": str(port)})
    models = ["gpt-4o-mini", "gpt-4o"]
    jobs = [
        simple_job(i, model=models[i % 2], params={"temperature": 0}, priority="high")
        for i in range(8)
    ]
    first = pipeline.queue.submit_many(jobs, packed=False)
    pipeline.queue.wait([h.id for h in first], timeout=60)
    again = pipeline.queue.submit_many([{**job} for job in jobs[:5]], packed=False)
    pipeline.queue.wait([h.id for h in again], timeout=60)

    with pipeline.queue.sessions() as session:
        succeeded = session.scalar(select(func.count()).where(JobRecord.status == "succeeded"))
    # A group is counted just after its results are published: wait for the last one.
    deadline = time.monotonic() + 15
    samples = scrape(port)
    while total(samples[f"{names.JOBS}_total"]) < succeeded and time.monotonic() < deadline:
        time.sleep(0.2)
        samples = scrape(port)
    assert {n for n in samples if n.startswith(names.PREFIX)} <= names.exposed_series_names()

    with pipeline.queue.sessions() as session:
        spend_by_model = dict(
            session.execute(
                select(LedgerEntryRecord.model, func.sum(LedgerEntryRecord.cost_usd)).group_by(
                    LedgerEntryRecord.model
                )
            ).all()
        )
        hits, avoided = session.execute(
            select(func.count(), func.sum(LedgerEntryRecord.avoided_usd)).where(
                LedgerEntryRecord.state == "cache_hit"
            )
        ).one()
        usage = session.scalars(
            select(BudgetUsageRecord).where(
                BudgetUsageRecord.scope == "global", BudgetUsageRecord.period == "daily"
            )
        ).one()

    jobs_total = samples[f"{names.JOBS}_total"]
    assert succeeded == 13
    assert total(jobs_total, outcome="succeeded") == succeeded
    assert total(jobs_total, outcome="succeeded", priority="high", model="gpt-4o") == 4 + 2
    spend = samples[f"{names.SPEND_USD}_total"]
    for model in models:
        assert as_money(total(spend, model=model)) == str(spend_by_model[model])
        assert Decimal(str(spend_by_model[model])) > 0
    assert hits == 5
    assert total(samples[f"{names.CACHE_HITS}_total"]) == hits
    cache_saved = [
        (labels, value)
        for labels, value in samples[f"{names.SAVED_USD}_total"]
        if labels["lever"].startswith(CACHE_LEVER_PREFIX)
    ]
    assert as_money(total(cache_saved)) == str(avoided)
    budget = {"scope": "global", "period": "daily"}
    assert as_money(total(samples[names.BUDGET_SPENT_USD], **budget)) == str(usage.spent_usd)
    assert total(samples[names.BUDGET_LIMIT_USD], **budget) == 5.0
    assert total(samples[names.BUDGET_UTILISATION], **budget) == float(
        (usage.spent_usd + usage.reserved_usd) / Decimal(5)
    )
    assert total(samples[f"{names.GROUP_SIZE}_count"]) >= 1
    assert total(samples[f"{names.PROVIDER_LATENCY_S}_count"]) == 8
    assert {labels["queue"] for labels, _ in samples[names.QUEUE_DEPTH]} >= {"agentqueue.high"}
