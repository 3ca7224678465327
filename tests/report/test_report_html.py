"""`agentqueue report --html` of a real run (worker, PostgreSQL, Redis), opened in Chromium:
every chart draws data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from agentqueue.budget.budget_limits import set_budget
from agentqueue.jobs import JobStatus, utcnow
from agentqueue.messaging import Dispatcher
from agentqueue.scheduler.release import release_deferred
from tests.report import browser
from tests.support.pipeline import Pipeline, running_pipeline, simple_job

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "report.png"
EXPECTED_CHARTS = {
    "spend-model",
    "spend-agent_type",
    "spend-tenant",
    "savings",
    "cache-ratio",
    "latency",
    "backlog",
    "batch-share",
    "budget-0",
    "budget-1",
}


def _closed_window(now: datetime) -> str:
    """An off-peak window that is not open now, so low jobs are deferred."""
    start = (now.hour + 6) % 24
    return f"{start:02d}:00-{(start + 1) % 24:02d}:00"


@pytest.fixture
def deferring_pipeline(redis_url: str, postgres_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    with running_pipeline(
        redis_url, postgres_url, tmp_path, offpeak_windows=_closed_window(datetime.now(UTC))
    ) as running:
        yield running


def _run_workload(pipeline: Pipeline) -> None:
    queue = pipeline.queue
    for scope, limit in (("global", "2"), ("tenant:acme", "0.05")):
        set_budget(queue.sessions, scope, "daily", Decimal(limit), now=utcnow(), timezone="UTC")
    pipeline.start_worker()
    shapes = [
        ("support-bot", "gpt-4o-mini", "acme", "high"),
        ("summarizer", "gpt-4o", "globex", "normal"),
        ("researcher", "gpt-5-nano", "acme", "critical"),
    ]
    jobs = [
        simple_job(i, agent_type=a, model=m, tenant=t, priority=p, params={"temperature": 0})
        for i in range(12)
        for a, m, t, p in [shapes[i % 3]]
    ]
    first = queue.submit_many(jobs, packed=False)
    queue.wait([h.id for h in first], timeout=60)
    repeats = queue.submit_many([{**job} for job in jobs[:5]], packed=False)
    queue.wait([h.id for h in repeats], timeout=60)
    low = queue.submit_many(
        [simple_job(100 + i, model="gpt-5-nano", priority="low", tenant="globex") for i in range(4)]
    )
    ids = [h.id for h in low]
    assert all(r.status is JobStatus.DEFERRED for r in queue.statuses(ids).values())
    dispatcher = Dispatcher(queue.celery, packed_batch_size=100)
    release_deferred(
        queue.sessions,
        lambda released: dispatcher.send(released, packed=True, service_tier="flex", released=True),
        now=utcnow() + timedelta(hours=12),
        limit=10,
        window_open=True,
    )
    done = queue.wait(ids, timeout=60)
    assert {r.service_tier for r in done.values()} == {"flex"}


def test_report_html_of_a_real_run_draws_every_chart(
    deferring_pipeline: Pipeline, tmp_path: Path
) -> None:
    """Given a run with spend, cache hits, budgets and deferred flex jobs, the HTML report
    opened in Chromium draws data in every chart, and the terminal report prints its tables."""
    _run_workload(deferring_pipeline)
    page = tmp_path / "report.html"
    completed = subprocess.run(
        [sys.executable, "-m", "agentqueue.cli", "report", "--since", "1d", "--html", str(page)],
        env={**os.environ, **deferring_pipeline.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert "money saved by lever" in completed.stdout and "flex tier" in completed.stdout
    assert "E-" not in completed.stdout
    html = page.read_text()
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html and "<script" not in html

    charts = browser.drawn_charts(page)

    assert set(charts) == EXPECTED_CHARTS
    for chart, (drawn, kind) in charts.items():
        assert kind == "data" and drawn > 0, f"{chart} drew nothing"
    shot = tmp_path / "report.png"
    browser.screenshot(page, shot)
    assert shot.stat().st_size > 20_000
    if os.environ.get("AGENTQUEUE_TEST_UPDATE_SCREENSHOT"):
        shutil.copy(shot, DOCS_SCREENSHOT)
