"""`agentqueue metrics`: a small Prometheus exporter of what SQL and Redis hold."""

from __future__ import annotations

import time

import click

from agentqueue.settings import get_settings

DEFAULT_EXPORTER_PORT = 9465


@click.command()
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help=f"Port to serve /metrics on (default {DEFAULT_EXPORTER_PORT}).",
)
@click.option(
    "--address", default=None, help="Address to listen on (default AGENTQUEUE_METRICS_ADDRESS)."
)
@click.option("--once", is_flag=True, help="Print the metrics once and exit, serving nothing.")
def metrics(port: int | None, address: str | None, once: bool) -> None:
    """Serve budgets, queue depths, the deferred backlog and the cache tiers' counters.

    Workers count jobs, money and latencies themselves (AGENTQUEUE_METRICS_PORT); this
    exporter reads the state every worker shares, so one of it is enough.
    """
    from prometheus_client import generate_latest

    from agentqueue.metrics.server import build_registry, serve
    from agentqueue.persistence.engine import get_sessionmaker
    from agentqueue.persistence.migrate import ensure_embedded_schema

    settings = get_settings()
    ensure_embedded_schema(settings.resolved_database_url, auto_migrate=settings.auto_migrate)
    sessions = get_sessionmaker(settings.resolved_database_url)
    registry = build_registry(settings, sessions, worker_counters=False, cache_counters=True)
    if once:
        click.echo(generate_latest(registry).decode(), nl=False)
        return
    chosen_port = port or DEFAULT_EXPORTER_PORT
    chosen_address = address or settings.metrics_address
    if not serve(registry, chosen_port, chosen_address):
        raise click.ClickException(f"port {chosen_port} is in use")
    click.echo(f"serving http://{chosen_address}:{chosen_port}/metrics (Ctrl-C stops)")
    while True:
        time.sleep(3600)
