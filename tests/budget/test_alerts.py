"""Budget alerts: once per scope, window and threshold, across processes; sink and webhook."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from agentqueue.budget.alerts import BudgetAlert, BudgetAlerts
from agentqueue.budget.periods import window_for
from agentqueue.budget.policy import BudgetLadder
from agentqueue.budget.state import BudgetState
from agentqueue.persistence.engine import get_sessionmaker
from tests.budget.conftest import NOON
from tests.support.receivers import Webhook, webhook_receiver


def state(utilisation: str, *, scope: str = "tenant:acme", days_later: int = 0) -> BudgetState:
    window = window_for("daily", NOON + timedelta(days=days_later), "UTC")
    used = Decimal(utilisation) * 10
    return BudgetState(
        scope=scope,
        period="daily",
        window_start=window.start,
        window_end=window.end,
        window_label=window.label(),
        spent_usd=used,
        reserved_usd=Decimal(0),
        limit_usd=Decimal(10),
        utilisation=Decimal(utilisation),
        action="",
    )


def alerts_for(database_url: str, **options: Any) -> tuple[BudgetAlerts, list[BudgetAlert]]:
    received: list[BudgetAlert] = []
    alerts = BudgetAlerts(
        get_sessionmaker(database_url), BudgetLadder(), sink=received.append, **options
    )
    return alerts, received


def test_one_alert_per_threshold_even_from_two_processes(database_url: str) -> None:
    """Given two workers (each with its own alerts object, as in two processes) that both see
    the budget at 55%, then exactly one alert is sent; seeing it again sends nothing."""
    first, first_seen = alerts_for(database_url)
    second, second_seen = alerts_for(database_url)
    first.check([state("0.55")])
    second.check([state("0.55")])
    first.check([state("0.56")])
    assert len(first_seen) + len(second_seen) == 1
    assert (first_seen + second_seen)[0].threshold == Decimal("0.50")


def test_a_jump_announces_every_threshold_it_crossed_once_in_order(database_url: str) -> None:
    """Given a jump from nothing to 92%, then the 50, 80 and 90% crossings are each announced
    once, lowest first, each with its own action; at 96% only the next one; a new day's window
    starts over; other scopes are separate."""
    alerts, seen = alerts_for(database_url)
    alerts.check([state("0.92")])
    assert [(a.threshold, a.action) for a in seen] == [
        (Decimal("0.50"), "alert"),
        (Decimal("0.80"), "right_size"),
        (Decimal("0.90"), "defer"),
    ]
    alerts.check([state("0.93")])
    alerts.check([state("0.96")])
    assert [a.threshold for a in seen[3:]] == [Decimal("0.95")]
    alerts.check([state("0.60", days_later=1), state("0.60", scope="global")])
    assert [(a.scope, a.threshold) for a in seen[4:]] == [
        ("tenant:acme", Decimal("0.50")),
        ("global", Decimal("0.50")),
    ]
    assert "tenant:acme daily budget (2026-03-12) at 60.0% of $10.00" in seen[4].message()


def test_a_second_process_announces_only_what_the_first_did_not(database_url: str) -> None:
    """Given one process that announced 50% and another that then sees 85%, the second
    announces 80% alone: nothing twice, nothing skipped."""
    first, first_seen = alerts_for(database_url)
    second, second_seen = alerts_for(database_url)
    first.check([state("0.55")])
    second.check([state("0.85")])
    assert [a.threshold for a in first_seen] == [Decimal("0.50")]
    assert [a.threshold for a in second_seen] == [Decimal("0.80")]


def test_refusal_counts_as_the_refuse_threshold(database_url: str) -> None:
    alerts, seen = alerts_for(database_url)
    alerts.check([state("0.97")])
    alerts.check([state("0.97")], refused=True)
    assert [(a.threshold, a.action) for a in seen][-1] == (Decimal("1.00"), "refuse")
    assert len(seen) == 5  # 50, 80, 90, 95, then 100 at the refusal


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with webhook_receiver() as hook:
        yield hook


def test_webhook_receives_the_alert_as_json(database_url: str, webhook: Webhook) -> None:
    bodies = webhook.bodies
    alerts, _ = alerts_for(database_url, webhook_url=webhook.url)
    alerts.check([state("0.81")])
    assert [body["threshold"] for body in bodies] == ["0.50", "0.80"]
    assert bodies[1]["type"] == "budget_alert"
    assert bodies[1]["action"] == "right_size" and bodies[1]["limit_usd"] == "10"
    assert bodies[1]["scope"] == "tenant:acme"


def test_broken_channels_never_break_admission(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Given a sink that raises and a webhook nobody listens on, when an alert fires, then
    check() returns normally, the alert is logged, and the log never shows the webhook URL."""

    def broken_sink(alert: BudgetAlert) -> None:
        raise RuntimeError("event bus down")

    alerts = BudgetAlerts(
        get_sessionmaker(database_url),
        BudgetLadder(),
        sink=broken_sink,
        webhook_url="http://127.0.0.1:1/hook?token=secret",
        webhook_timeout_s=0.5,
    )
    with caplog.at_level(logging.WARNING):
        sent = alerts.check([state("0.51")])
    assert len(sent) == 1
    assert "budget alert: tenant:acme" in caplog.text
    assert "webhook failed" in caplog.text
    assert "secret" not in caplog.text
