"""Names that define the storage and messaging layout, kept in one place."""

from __future__ import annotations

from typing import Final

# Celery queues, one per priority (not Redis message priorities, which are approximate).
QUEUE_PREFIX: Final = "agentqueue."
PRIORITIES: Final = ("critical", "high", "normal", "low")
QUEUES: Final = tuple(f"{QUEUE_PREFIX}{p}" for p in PRIORITIES)

# Celery task names, explicit so renaming a module never orphans queued messages.
TASK_RUN_JOB: Final = "agentqueue.run_job"
TASK_RUN_BATCH: Final = "agentqueue.run_batch"
TASK_RELEASE_DEFERRED: Final = "agentqueue.release_deferred"
TASK_SWEEP_STALE_RESERVATIONS: Final = "agentqueue.sweep_stale_reservations"
TASK_BUDGET_ALERTS: Final = "agentqueue.budget_alerts"
TASK_PURGE_EXPIRED_CACHE: Final = "agentqueue.purge_expired_cache"

# Redis keys (application data, not Celery's own).
KEY_PREFIX: Final = "agentqueue:"
RESULT_KEY_PREFIX: Final = f"{KEY_PREFIX}result:"
CACHE_KEY_PREFIX: Final = f"{KEY_PREFIX}cache:"
CACHE_TAG_PREFIX: Final = f"{KEY_PREFIX}cachetag:"
CACHE_INVALIDATION_CHANNEL: Final = f"{KEY_PREFIX}cache-invalidate"
CACHE_STATS_KEY_PREFIX: Final = f"{KEY_PREFIX}cachestats:"
SINGLE_FLIGHT_PREFIX: Final = f"{KEY_PREFIX}inflight:"
ALERT_KEY_PREFIX: Final = f"{KEY_PREFIX}alert:"

# Limits.
MAX_JOB_ID_LENGTH: Final = 128
MAX_METADATA_BYTES: Final = 4096
