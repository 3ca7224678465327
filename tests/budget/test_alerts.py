"""Budget alerts: once per scope, window and threshold, across processes; sink and webhook."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from agentqueue.budget.alerts import BudgetAlert, BudgetAlerts
from agentqueue.budget.periods import window_for
from agentqueue.budget.policy import BudgetLadder
from agentqueue.budget.state import BudgetState
from agentqueue.persistence.engine import get_sessionmaker
from tests.budget.conftest import NOON


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


def test_a_jump_sends_the_highest_threshold_once_and_later_crossings_again(
    database_url: str,
) -> None:
    """Given a jump from nothing to 92%, then one alert (90%, defer), not a burst of three;
    at 96% the next one; a new day's window starts over; other scopes are separate."""
    alerts, seen = alerts_for(database_url)
    alerts.check([state("0.92")])
    assert [(a.threshold, a.action) for a in seen] == [(Decimal("0.90"), "defer")]
    alerts.check([state("0.93")])
    alerts.check([state("0.96")])
    assert [a.threshold for a in seen] == [Decimal("0.90"), Decimal("0.95")]
    alerts.check([state("0.60", days_later=1), state("0.60", scope="global")])
    assert len(seen) == 4
    assert "tenant:acme daily budget (2026-03-12) at 60.0% of $10.00" in seen[2].message()


def test_refusal_counts_as_the_refuse_threshold(database_url: str) -> None:
    alerts, seen = alerts_for(database_url)
    alerts.check([state("0.97")], refused=True)
    assert [(a.threshold, a.action) for a in seen] == [(Decimal("1.00"), "refuse")]


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real local HTTP endpoint that records JSON bodies posted to it."""
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook?token=secret", bodies
    server.shutdown()
    server.server_close()


def test_webhook_receives_the_alert_as_json(
    database_url: str, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, bodies = webhook
    alerts, _ = alerts_for(database_url, webhook_url=url)
    alerts.check([state("0.81")])
    assert len(bodies) == 1
    assert bodies[0]["type"] == "budget_alert"
    assert bodies[0]["threshold"] == "0.80" and bodies[0]["limit_usd"] == "10"
    assert bodies[0]["scope"] == "tenant:acme"


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
