"""Budget alerts as Celery events, so Flower and event consumers see them."""

from __future__ import annotations

import logging

from celery import current_app

from agentqueue.budget.alerts import BudgetAlert

log = logging.getLogger(__name__)

BUDGET_ALERT_EVENT = "agentqueue-budget-alert"


def send_alert_event(alert: BudgetAlert) -> None:
    try:
        with current_app.events.default_dispatcher() as dispatcher:
            dispatcher.send(BUDGET_ALERT_EVENT, **alert.as_dict())
    except Exception:  # an event bus hiccup must not fail the job that crossed a threshold
        log.exception("could not send the budget alert event")
