"""Budget alerts from a real worker: every threshold one step crosses is announced once, in
order, in the log, as a Celery event (as Flower or `celery events` receive it) and by webhook."""

from __future__ import annotations

import time
from decimal import Decimal

from agentqueue.budget.budget_limits import set_budget
from agentqueue.budget.gate import BudgetGate
from agentqueue.constants import BUDGET_ALERT_EVENT
from agentqueue.jobs import AgentJob, JobStatus, utcnow
from agentqueue.usage import TokenUsage
from tests.budget.conftest import admit, settle
from tests.support.pipeline import Pipeline, simple_job
from tests.support.receivers import celery_events, webhook_receiver

CROSSED = [Decimal("0.50"), Decimal("0.80"), Decimal("0.90"), Decimal("0.95")]
BIG_JOB = {"tenant": "acme", "params": {"temperature": 0.7, "max_tokens": 1000}}


def test_a_jump_from_40_to_99_percent_announces_50_80_90_and_95_once_each(
    pipeline: Pipeline,
) -> None:
    """Given tenant acme at about 40% of its daily budget, when one job's reservation takes
    it to 99%, then the worker announces the 50, 80, 90 and 95% crossings once each, lowest
    first, on all three channels; the job still runs, and nothing more is announced."""
    gate = BudgetGate(pipeline.queue.sessions, pipeline.settings)
    # What the worker will reserve for the big job: measured on a twin in another tenant.
    [probe] = admit(gate, [AgentJob.model_validate({**simple_job(1), **BIG_JOB, "tenant": "x"})])
    worst_case = probe.reservation.reserved_usd
    gate.release_many([probe.job_id])
    # Spent so far: about two thirds of the big job's worst case, so 40% of the limit below.
    [earlier] = admit(gate, [AgentJob.model_validate({**simple_job(2), **BIG_JOB})])
    costs = settle(gate, {earlier.job_id: TokenUsage(0, 678)})
    spent = costs[earlier.job_id]
    limit = (spent + worst_case) / Decimal("0.99")
    assert Decimal("0.35") < spent / limit < Decimal("0.50")
    set_budget(pipeline.queue.sessions, "tenant:acme", "daily", limit, now=utcnow(), timezone="UTC")

    with (
        webhook_receiver() as hook,
        celery_events(pipeline.queue.celery, BUDGET_ALERT_EVENT) as events,
    ):
        pipeline.start_worker(env={"AGENTQUEUE_BUDGET_WEBHOOK_URL": hook.url})
        result = pipeline.queue.submit({**simple_job(1), **BIG_JOB, "priority": "high"}).get(
            timeout=30
        )
        assert result.status is JobStatus.SUCCEEDED
        deadline = time.monotonic() + 10
        while len(events) < len(CROSSED) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # room for a duplicate to show up, were one sent

    assert [Decimal(body["threshold"]) for body in hook.bodies] == CROSSED
    assert [Decimal(event["threshold"]) for event in events] == CROSSED
    assert {event["scope"] for event in events} == {"tenant:acme"}
    assert [event["action"] for event in events] == [
        "alert",
        "right_size",
        "defer",
        "high_priority_only",
    ]
    assert all(Decimal(event["utilisation"]) >= Decimal("0.95") for event in events)
    log = pipeline.worker_log()
    announced = [line for line in log.splitlines() if "budget alert: tenant:acme" in line]
    assert [line.split("past the ")[1].split("%")[0] for line in announced] == [
        "50",
        "80",
        "90",
        "95",
    ]
    assert "could not send the budget alert event" not in log
    assert "Traceback" not in log
