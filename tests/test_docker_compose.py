"""docker-compose.yml runs the whole system, with durable Redis and Flower behind auth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


def _services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def test_every_part_of_the_system_is_a_service() -> None:
    assert {"redis", "postgres", "migrate", "worker", "worker-batch", "beat", "flower"} <= set(
        _services()
    )


def test_redis_keeps_messages_and_never_evicts() -> None:
    command = " ".join(_services()["redis"]["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command


def test_flower_requires_a_password_and_listens_on_loopback_only() -> None:
    flower = _services()["flower"]
    auth = flower["environment"]["FLOWER_BASIC_AUTH"]
    assert "FLOWER_USER:?" in auth and "FLOWER_PASSWORD:?" in auth
    assert all(port.startswith("127.0.0.1:") for port in flower["ports"])


def test_workers_wait_for_the_migration_and_use_postgres() -> None:
    services = _services()
    for name in ("worker", "worker-batch", "beat", "flower"):
        service = services[name]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["environment"]["AGENTQUEUE_DATABASE_URL"].startswith("postgresql+psycopg")
    assert services["migrate"]["command"] == ["agentqueue", "db", "upgrade"]


def test_each_worker_serves_its_pool() -> None:
    services = _services()
    assert services["worker"]["command"] == ["agentqueue", "worker", "--pool", "interactive"]
    assert services["worker-batch"]["command"] == ["agentqueue", "worker", "--pool", "batch"]
    assert services["beat"]["command"] == ["agentqueue", "beat"]


def test_monitoring_profile_scrapes_workers_and_provisions_grafana() -> None:
    """`--profile monitoring` adds the exporter, Prometheus and Grafana; nothing else changes."""
    services = _services()
    monitoring = {name for name, s in services.items() if "monitoring" in s.get("profiles", [])}
    assert monitoring == {"metrics", "prometheus", "grafana"}
    root = COMPOSE.parent
    worker_port = services["worker"]["environment"]["AGENTQUEUE_METRICS_PORT"]
    scrape = yaml.safe_load((root / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        t for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    }
    assert {f"worker:{worker_port}", f"worker-batch:{worker_port}"} <= targets
    exporter_port = services["metrics"]["command"][
        services["metrics"]["command"].index("--port") + 1
    ]
    assert f"metrics:{exporter_port}" in targets
    for name in ("prometheus", "grafana"):
        assert all(port.startswith("127.0.0.1:") for port in services[name]["ports"])
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (root / source).exists(), source
