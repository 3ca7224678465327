"""What one batch carries through the executor's steps: each job's work, and the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from agentqueue.budget.gate import Admission
from agentqueue.budget.possible_repeats import PossibleRepeat
from agentqueue.cache.entry import CacheEntry
from agentqueue.cache.request import CacheRequest
from agentqueue.errors import AgentQueueError
from agentqueue.jobs import ErrorInfo, JobResult
from agentqueue.persistence.jobs_repository import ClaimedJob
from agentqueue.workers.call_guard import FallbackNeeded


@dataclass
class ExecutionReport:
    """What happened to each job id handed to the executor."""

    retry: dict[str, AgentQueueError] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    deferred: dict[str, datetime] = field(default_factory=dict)
    # Waiting for budget room other jobs' reservations hold: seconds until it asks again.
    waiting: dict[str, float] = field(default_factory=dict)
    # Jobs whose final record (written) says `failed`: their task ends in FAILURE.
    failed: dict[str, ErrorInfo] = field(default_factory=dict)


@dataclass
class JobWork:
    """One claimed job on its way through the batch."""

    item: ClaimedJob
    admission: Admission | None = None
    cache: CacheRequest | None = None
    entry: CacheEntry | None = None
    cache_tier: str | None = None
    service_tier: str = "standard"
    tokens_saved: int = 0
    result: JobResult | None = None
    # Fallbacks: why the current model cannot serve the job now, the models already tried,
    # the models left to try (None until first asked), and the line the result will carry.
    fallback: FallbackNeeded | None = None
    tried: list[str] = field(default_factory=list)
    remaining: list[str] | None = None
    note: str | None = None
    # An earlier attempt may have paid for this job's call without keeping the answer.
    carried_repeat: bool = False
    # Requests of this attempt that failed after the provider may have received (and billed)
    # them: a dropped connection or read timeout, retried or given up on.
    sent_in_transit: int = 0

    @property
    def job_id(self) -> str:
        return self.item.job.id

    @property
    def possible_repeat(self) -> bool:
        """Some call of this job may have been paid without its answer being kept: it is
        charged at the reservation, which is therefore never released silently."""
        return self.carried_repeat or self.sent_in_transit > 0

    @property
    def unknown_calls(self) -> PossibleRepeat:
        return PossibleRepeat(self.carried_repeat, self.sent_in_transit)
