"""The Celery app: `celery -A agentqueue.workers.app worker` and `agentqueue worker` both use it."""

from __future__ import annotations

from agentqueue.workers.app_factory import create_app

app = create_app()

# Worker-process hooks (engine after fork, migrations, shutdown) register on import.
from agentqueue.workers import lifecycle  # noqa: E402, F401
