"""The Grafana dashboard is valid JSON and queries only metrics the code really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

from agentqueue.metrics import names
from agentqueue.metrics.job_metrics import JobMetrics
from agentqueue.metrics.server import build_registry
from agentqueue.persistence.engine import get_sessionmaker
from agentqueue.settings import load_settings

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "agentqueue-dashboard.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _sample_names(families: object) -> set[str]:
    found = set()
    for family in families:  # type: ignore[attr-defined]
        if family.name.startswith(names.PREFIX):
            found |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    return found


def exported_names(redis_url: str, sqlite_url: str) -> set[str]:
    """What a worker's instruments and the scrape-time collectors really produce."""
    JobMetrics(enabled=True)  # creates the worker's instruments in this process
    settings = load_settings(redis_url=redis_url, database_url=sqlite_url)
    registry = build_registry(
        settings, get_sessionmaker(sqlite_url), worker_counters=False, cache_counters=True
    )
    return _sample_names(REGISTRY.collect()) | _sample_names(registry.collect())


def test_dashboard_queries_name_only_exported_metrics(redis_url: str, sqlite_url: str) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    queried = {name for query in queries for name in re.findall(r"\bagentqueue_\w+", query)}
    exported = exported_names(redis_url, sqlite_url)

    assert queried, "the dashboard queries nothing"
    assert queried <= exported, f"not exported: {sorted(queried - exported)}"
    # Every family the code exports is on the dashboard (a new metric gets a panel).
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in exported}
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in queried}
    assert families == shown, f"no panel for: {sorted(families - shown)}"
    assert exported == names.exposed_series_names()
