"""Bring a database to the newest schema with Alembic (`agentqueue db upgrade`).

Alembic (with Mako and Pygments) is imported when a migration runs, not with this module: a
worker or client that does not migrate starts a few hundred milliseconds sooner.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on '%' in URL-encoded passwords.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply every migration up to `revision`; safe to run on an up-to-date database."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from agentqueue.persistence.engine import build_engine

    engine = build_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def ensure_embedded_schema(url: str, *, auto_migrate: bool) -> None:
    """The embedded SQLite default should just work on a fresh machine: migrate it on open.

    PostgreSQL is migrated on purpose (`agentqueue db upgrade`, the compose migrate service).
    """
    from agentqueue.persistence.engine import is_sqlite

    if auto_migrate and is_sqlite(url):
        upgrade(url)
