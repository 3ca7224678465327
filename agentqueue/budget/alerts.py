"""Budget alerts: one per scope, window and threshold crossed, however many workers notice it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from agentqueue.budget.policy import BudgetAction, BudgetLadder
from agentqueue.budget.state import BudgetState
from agentqueue.errors import DatabaseUnavailable
from agentqueue.money import format_usd
from agentqueue.persistence.alert_records import insert_new_alerts
from agentqueue.persistence.transactions import in_transaction

log = logging.getLogger(__name__)
# httpx's INFO line of every request names the full webhook URL (tokens in its query too).
logging.getLogger("httpx").setLevel(logging.WARNING)
BASIS_POINTS = Decimal(10_000)

AlertKey = tuple[str, str, datetime, int]  # (scope, period, window_start, threshold_bp)
_KEY_COLUMNS = ("scope", "period", "window_start", "threshold_bp")


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """A budget crossed `threshold` in its current window; `action` is what the ladder now does."""

    scope: str
    period: str
    window_label: str
    window_start: datetime
    threshold: Decimal
    utilisation: Decimal
    action: str
    spent_usd: Decimal
    reserved_usd: Decimal
    limit_usd: Decimal

    def message(self) -> str:
        return (
            f"budget alert: {self.scope} {self.period} budget ({self.window_label}) at "
            f"{self.utilisation * 100:.1f}% of {format_usd(self.limit_usd)}, past the "
            f"{self.threshold * 100:.0f}% threshold; action now: {self.action}"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe, for the webhook: `fields()` plus its type."""
        return {"type": "budget_alert", **self.fields()}

    def fields(self) -> dict[str, Any]:
        """JSON-safe fields, for the Celery event (whose type is given apart)."""
        return {
            "scope": self.scope,
            "period": self.period,
            "window": self.window_label,
            "window_start": self.window_start.isoformat(),
            "threshold": str(self.threshold),
            "utilisation": str(self.utilisation.quantize(Decimal("0.0001"))),
            "action": self.action,
            "spent_usd": str(self.spent_usd),
            "reserved_usd": str(self.reserved_usd),
            "limit_usd": str(self.limit_usd),
            "message": self.message(),
        }


AlertSink = Callable[[BudgetAlert], None]


class BudgetAlerts:
    """Records each crossing once in `budget_alerts`, then logs it, calls the sink, posts it."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        ladder: BudgetLadder,
        *,
        sink: AlertSink | None = None,
        webhook_url: str | None = None,
        webhook_timeout_s: float = 2.0,
    ) -> None:
        self.factory = factory
        self.ladder = ladder
        self.sink = sink
        self.webhook_url = webhook_url
        self.webhook_timeout_s = webhook_timeout_s
        self._recorded: set[AlertKey] = set()  # crossings this process knows are already sent

    def check(self, states: Iterable[BudgetState], *, refused: bool = False) -> list[BudgetAlert]:
        """Alert once on each threshold the budgets have newly reached, lowest first;
        `refused` means a job was refused for these budgets, which counts as reaching the
        refuse threshold. Returns what was sent, in the order it was sent."""
        sent = []
        for state in states:
            utilisation = state.utilisation
            if refused:
                utilisation = max(utilisation, self.ladder.refuse_at)
            reached = [(t, a) for t, a in self.ladder.steps() if utilisation >= t]
            keys = {
                self._key(state, threshold): (threshold, action) for threshold, action in reached
            }
            fresh = [key for key in keys if key not in self._recorded]
            if not fresh:
                continue
            try:
                inserted = self._record(fresh, utilisation, keys)
            except DatabaseUnavailable:
                log.warning("budget alert for %s not recorded: ledger unavailable", state.scope)
                continue
            except Exception:  # alerts must never fail an admission that already committed
                log.exception("budget alert for %s not recorded", state.scope)
                continue
            self._recorded.update(fresh)
            # Every threshold this step crossed, lowest first: a jump from 40% to 99% is
            # four crossings (50, 80, 90, 95), and each is announced on its own.
            for threshold, action in sorted(keys[key] for key in inserted):
                alert = self._alert(state, threshold, utilisation, action)
                self._emit(alert)
                sent.append(alert)
        return sent

    @staticmethod
    def _key(state: BudgetState, threshold: Decimal) -> AlertKey:
        return (state.scope, state.period, state.window_start, int(threshold * BASIS_POINTS))

    def _record(
        self,
        fresh: list[AlertKey],
        utilisation: Decimal,
        actions: dict[AlertKey, tuple[Decimal, BudgetAction]],
    ) -> list[AlertKey]:
        """Insert one row per crossing; the unique key turns a second insert into a no-op."""
        now = datetime.now(UTC)

        keys = sorted(fresh)
        rows = [
            {
                **dict(zip(_KEY_COLUMNS, key, strict=True)),
                "utilisation": utilisation,
                "action": actions[key][1].value,
                "created_at": now,
            }
            for key in keys
        ]
        added = in_transaction(self.factory, lambda session: insert_new_alerts(session, rows))
        return [keys[i] for i in added]

    @staticmethod
    def _alert(
        state: BudgetState, threshold: Decimal, utilisation: Decimal, action: BudgetAction
    ) -> BudgetAlert:
        return BudgetAlert(
            scope=state.scope,
            period=state.period,
            window_label=state.window_label,
            window_start=state.window_start,
            threshold=threshold,
            utilisation=utilisation,
            action=action.value,
            spent_usd=state.spent_usd,
            reserved_usd=state.reserved_usd,
            limit_usd=state.limit_usd,
        )

    def _emit(self, alert: BudgetAlert) -> None:
        log.warning(alert.message())
        if self.sink is not None:
            try:
                self.sink(alert)
            except Exception:  # an alert channel must never break admission
                log.exception("budget alert sink failed")
        if self.webhook_url:
            import httpx  # here, not at the top: a process that sends no webhook never loads it

            try:
                response = httpx.post(
                    self.webhook_url, json=alert.as_dict(), timeout=self.webhook_timeout_s
                )
                response.raise_for_status()
            except httpx.HTTPError as error:
                # The URL may carry a token: name the failure, never the address.
                log.warning("budget alert webhook failed: %s", type(error).__name__)
