"""Gauges read from SQL and Redis when scraped: budgets, queue depths, the deferred backlog.

Workers serve them next to their own counters, and `agentqueue metrics` serves them alone;
every reader sees the same values, so dashboards take `max` over instances.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from agentqueue.budget.budget_limits import read_budgets
from agentqueue.budget.periods import current_windows
from agentqueue.budget.state import utilisation_of
from agentqueue.constants import PRIORITIES, QUEUES
from agentqueue.metrics import names
from agentqueue.persistence.money_queries import deferred_backlog
from agentqueue.settings import Settings

log = logging.getLogger(__name__)


class LedgerStateCollector(Collector):
    """Reads the budgets' current windows, the deferred jobs and the queue lengths."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        broker: redis.Redis,
        cache_redis: redis.Redis | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.broker = broker
        self.cache_redis = cache_redis

    def collect(self) -> Iterator[Any]:
        yield from self._budgets()
        yield from self._backlog()
        yield from self._queues()
        if self.cache_redis is not None:
            yield from self._cache_tiers(self.cache_redis)

    def _budgets(self) -> Iterator[GaugeMetricFamily]:
        labels = ["scope", "period"]
        families = {
            name: GaugeMetricFamily(name, doc, labels=labels)
            for name, doc in (
                (names.BUDGET_UTILISATION, "Spent plus reserved over the limit, current window."),
                (names.BUDGET_SPENT_USD, "USD settled in the budget's current window."),
                (names.BUDGET_RESERVED_USD, "USD reserved by running jobs, current window."),
                (names.BUDGET_LIMIT_USD, "The budget's hard limit in USD."),
            )
        }
        try:
            windows = current_windows(datetime.now(UTC), self.settings.timezone)
            budgets = read_budgets(self.sessions, windows)
        except Exception as error:  # a scrape must answer even without the database
            log.warning("metrics could not read the budgets: %s", type(error).__name__)
            budgets = []
        for budget in budgets:
            key = [budget.scope, budget.period.value]
            used = budget.spent_usd + budget.reserved_usd
            families[names.BUDGET_UTILISATION].add_metric(
                key, float(utilisation_of(used, budget.limit_usd))
            )
            families[names.BUDGET_SPENT_USD].add_metric(key, float(budget.spent_usd))
            families[names.BUDGET_RESERVED_USD].add_metric(key, float(budget.reserved_usd))
            families[names.BUDGET_LIMIT_USD].add_metric(key, float(budget.limit_usd))
        yield from families.values()

    def _backlog(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            names.DEFERRED_JOBS, "Jobs deferred to the off-peak window.", labels=["priority"]
        )
        try:
            with self.sessions() as session:
                backlog = deferred_backlog(session)
        except SQLAlchemyError as error:
            log.warning("metrics could not read the deferred jobs: %s", type(error).__name__)
            yield family
            return
        for priority in PRIORITIES:
            family.add_metric([priority], backlog.get(priority, 0))
        yield family

    def _queues(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            names.QUEUE_DEPTH, "Messages waiting in each priority queue.", labels=["queue"]
        )
        try:
            pipe = self.broker.pipeline(transaction=False)
            for queue in QUEUES:
                pipe.llen(queue)
            depths = pipe.execute()
        except redis.RedisError as error:
            log.warning("metrics could not read the queues: %s", type(error).__name__)
            yield family
            return
        for queue, depth in zip(QUEUES, depths, strict=True):
            family.add_metric([queue], int(depth))
        yield family

    def _cache_tiers(self, client: redis.Redis) -> Iterator[CounterMetricFamily]:
        from agentqueue.cache.stats import read_shared

        family = CounterMetricFamily(
            names.CACHE_TIER_LOOKUPS,
            "Cache lookups of every worker by tier and result (hit, miss, error).",
            labels=["tier", "result"],
        )
        try:
            shared = read_shared(client)
        except redis.RedisError as error:
            log.warning("metrics could not read the cache counters: %s", type(error).__name__)
            yield family
            return
        for tier in ("l1", "l2", "l3"):
            counters = shared.get(tier, {})
            for result, key in (("hit", "hits"), ("miss", "misses"), ("error", "errors")):
                family.add_metric([tier, result], int(counters.get(key, 0)))
        yield family
