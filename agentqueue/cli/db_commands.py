"""`agentqueue db upgrade|current`."""

from __future__ import annotations

import click

from agentqueue.persistence.migrate import current_revision, upgrade
from agentqueue.settings import get_settings


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations to AGENTQUEUE_DATABASE_URL."""
    url = get_settings().resolved_database_url
    upgrade(url)
    click.echo(f"database is at revision {current_revision(url)}")


@db.command("current")
def db_current() -> None:
    """Print the schema revision of the database."""
    click.echo(current_revision(get_settings().resolved_database_url) or "empty")
