"""Import every table module so `Base.metadata` knows them all (Alembic, tests)."""

from __future__ import annotations

from agentqueue.persistence import (
    answer_table,  # noqa: F401
    cache_tables,  # noqa: F401
    job_table,  # noqa: F401
    ledger_tables,  # noqa: F401
)
from agentqueue.persistence.base import Base

metadata = Base.metadata
