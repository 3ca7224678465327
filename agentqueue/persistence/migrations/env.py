"""Alembic environment: runs against the URL handed over by `agentqueue.persistence.migrate`."""

from __future__ import annotations

from alembic import context

from agentqueue.persistence.engine import build_engine
from agentqueue.persistence.tables import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "agentqueue.persistence.migrate sets sqlalchemy.url"

engine = build_engine(url)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
