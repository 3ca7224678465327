"""The demo's last step: the spend report of its run, as an HTML file next to its database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from rich.console import Console

from agentqueue.persistence.engine import get_sessionmaker
from agentqueue.report.data import build_report
from agentqueue.report.html import write_html
from agentqueue.settings import Settings

REPORT_NAME = "report.html"


def write_demo_report(console: Console, settings: Settings) -> Path:
    """Write the last day's report (reads SQL only: the demo's Redis may be gone)."""
    path = settings.data_dir / REPORT_NAME
    sessions = get_sessionmaker(settings.resolved_database_url)
    write_html(build_report(sessions, settings, since=timedelta(days=1)), path)
    console.print(f"spend report with charts: {path}", soft_wrap=True)
    return path
