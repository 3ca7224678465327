"""agentqueue: run LLM agent jobs on Celery workers, batched, budgeted, deferred and cached."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentqueue.jobs import AgentJob, JobResult, JobStatus, Priority

if TYPE_CHECKING:
    from agentqueue.client import AgentQueue, JobHandle

__all__ = ["AgentJob", "AgentQueue", "JobHandle", "JobResult", "JobStatus", "Priority"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The client pulls in Celery; import it only when asked for.
    if name in ("AgentQueue", "JobHandle"):
        from agentqueue import client

        return getattr(client, name)
    raise AttributeError(name)
