"""`agentqueue report`: spend, savings, cache, budgets, latency and backlog since a moment."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from agentqueue.settings import get_settings


@click.command()
@click.option("--since", default="7d", show_default=True, help="Period: 24h, 7d, 2w ...")
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write a self-contained HTML page with charts to this file.",
)
def report(since: str, html_path: Path | None) -> None:
    """Where the money went: spend per day by model, agent type and tenant, savings by lever,
    cache hit ratios, budget burn-down, job latency, deferred backlog and flex/batch share."""
    from agentqueue.persistence.engine import get_sessionmaker
    from agentqueue.persistence.migrate import ensure_embedded_schema
    from agentqueue.report.data import build_report, parse_since
    from agentqueue.report.html import write_html
    from agentqueue.report.terminal import print_report

    settings = get_settings()
    period = parse_since(since)
    ensure_embedded_schema(settings.resolved_database_url, auto_migrate=settings.auto_migrate)
    data = build_report(get_sessionmaker(settings.resolved_database_url), settings, since=period)
    print_report(data, Console())
    if html_path is not None:
        write_html(data, html_path)
        click.echo(f"report written to {html_path.resolve()}")
