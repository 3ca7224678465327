"""Serve /metrics over HTTP: a worker's counters (every process of it) and the ledger state."""

from __future__ import annotations

import logging
import os
from typing import Any

import redis
from sqlalchemy.orm import Session, sessionmaker

from agentqueue.metrics.multiproc import ENV
from agentqueue.settings import Settings

log = logging.getLogger(__name__)


def build_registry(
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    worker_counters: bool,
    cache_counters: bool = False,
) -> Any:
    """A registry with the ledger state, plus the worker's counters from its multiprocess
    directory (`worker_counters`), plus the cache tiers' shared counters (`cache_counters`)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    from agentqueue.cache.redis_client import build_cache_redis_client
    from agentqueue.metrics.ledger_state import LedgerStateCollector

    registry = CollectorRegistry()
    if worker_counters and os.environ.get(ENV):
        MultiProcessCollector(registry)
    broker = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    cache = build_cache_redis_client(settings) if cache_counters else None
    registry.register(LedgerStateCollector(settings, sessions, broker, cache))
    return registry


def serve(registry: Any, port: int, address: str) -> bool:
    """Start the HTTP server in a daemon thread; False when the port is taken (another
    process of the same worker, or another worker on this host, serves it)."""
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr=address, registry=registry)
    except OSError as error:
        log.warning("metrics not served on %s:%d: %s", address, port, error.strerror or error)
        return False
    log.info("metrics served on http://%s:%d/metrics", address, port)
    return True
