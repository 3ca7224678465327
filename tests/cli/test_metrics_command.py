"""`agentqueue metrics --once`: the exporter's budgets, backlog and queues as SQL and Redis
hold them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import redis
from prometheus_client.parser import text_string_to_metric_families

from agentqueue.budget.budget_limits import set_budget
from agentqueue.client import AgentQueue
from agentqueue.jobs import JobStatus, utcnow
from agentqueue.metrics import names
from agentqueue.settings import load_settings
from tests.support.pipeline import simple_job


def test_exporter_prints_budgets_backlog_and_queue_depths(
    redis_url: str, sqlite_url: str, tmp_path: Path
) -> None:
    """Given a budget with nothing spent, three low jobs deferred outside the off-peak window
    and two messages waiting on the high queue, one scrape shows exactly that."""
    closed = (
        f"{(datetime.now(UTC).hour + 6) % 24:02d}:00-{(datetime.now(UTC).hour + 7) % 24:02d}:00"
    )
    env = {
        "AGENTQUEUE_REDIS_URL": redis_url,
        "AGENTQUEUE_DATABASE_URL": sqlite_url,
        "AGENTQUEUE_DATA_DIR": str(tmp_path),
        "AGENTQUEUE_OFFPEAK_WINDOWS": closed,
    }
    settings = load_settings(**{k.removeprefix("AGENTQUEUE_").lower(): v for k, v in env.items()})
    with AgentQueue(settings) as queue:
        set_budget(
            queue.sessions, "tenant:acme", "weekly", Decimal("12.5"), now=utcnow(), timezone="UTC"
        )
        handles = queue.submit_many([simple_job(i, priority="low") for i in range(3)])
        statuses = queue.statuses([h.id for h in handles]).values()
        assert {s.status for s in statuses} == {JobStatus.DEFERRED}
    broker = redis.Redis.from_url(redis_url)
    broker.rpush("agentqueue.high", b"one", b"two")

    base = {k: v for k, v in os.environ.items() if not k.startswith("AGENTQUEUE_")}
    completed = subprocess.run(
        [sys.executable, "-m", "agentqueue.cli", "metrics", "--once"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stderr[-2000:]
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(completed.stdout)
        for sample in family.samples
    }
    budget = (("period", "weekly"), ("scope", "tenant:acme"))
    assert samples[(names.BUDGET_LIMIT_USD, budget)] == 12.5
    assert samples[(names.BUDGET_UTILISATION, budget)] == 0.0
    assert samples[(names.DEFERRED_JOBS, (("priority", "low"),))] == 3
    assert samples[(names.DEFERRED_JOBS, (("priority", "high"),))] == 0
    assert samples[(names.QUEUE_DEPTH, (("queue", "agentqueue.high"),))] == 2
    assert samples[(names.QUEUE_DEPTH, (("queue", "agentqueue.low"),))] == 0
    lookups = (("result", "hit"), ("tier", "l1"))
    assert samples[(f"{names.CACHE_TIER_LOOKUPS}_total", lookups)] == 0
