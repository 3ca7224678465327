"""Budget alerts as Celery events, so Flower and event consumers see them."""

from __future__ import annotations

import logging

from celery import current_app

from agentqueue.budget.alerts import BudgetAlert
from agentqueue.constants import BUDGET_ALERT_EVENT

log = logging.getLogger(__name__)


def send_alert_event(alert: BudgetAlert) -> None:
    """One `agentqueue-budget-alert` event; its fields are `BudgetAlert.fields()`."""
    try:
        with current_app.events.default_dispatcher() as dispatcher:
            # `type` is send()'s own first argument: the fields must not carry one too.
            dispatcher.send(BUDGET_ALERT_EVENT, **alert.fields())
    except Exception:  # an event bus hiccup must not fail the job that crossed a threshold
        log.exception("could not send the budget alert event")
