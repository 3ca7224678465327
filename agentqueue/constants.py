"""Names that define the storage and messaging layout, kept in one place."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

# Celery queues, one per priority (not Redis message priorities, which are approximate).
QUEUE_PREFIX: Final = "agentqueue."
PRIORITIES: Final = ("critical", "high", "normal", "low")
QUEUES: Final = tuple(f"{QUEUE_PREFIX}{p}" for p in PRIORITIES)

# The provider tier released deferred jobs ask for (used only where the model has a price for it).
OFFPEAK_TIER: Final = "flex"

# Celery task names, explicit so renaming a module never orphans queued messages.
TASK_RUN_JOB: Final = "agentqueue.run_job"
TASK_RUN_BATCH: Final = "agentqueue.run_batch"
TASK_RELEASE_DEFERRED: Final = "agentqueue.release_deferred"
TASK_SWEEP_STALE_RESERVATIONS: Final = "agentqueue.sweep_stale_reservations"
TASK_BUDGET_ALERTS: Final = "agentqueue.budget_alerts"
TASK_PURGE_EXPIRED_CACHE: Final = "agentqueue.purge_expired_cache"
TASK_REDELIVER_STALE_JOBS: Final = "agentqueue.redeliver_stale_jobs"
TASK_SUBMIT_PROVIDER_BATCHES: Final = "agentqueue.submit_provider_batches"
TASK_POLL_PROVIDER_BATCHES: Final = "agentqueue.poll_provider_batches"

# Redis keys (application data, not Celery's own).
KEY_PREFIX: Final = "agentqueue:"
RESULT_KEY_PREFIX: Final = f"{KEY_PREFIX}result:"
# A token pushed when a job's result is published, so waiting clients wake at once (BLPOP).
RESULT_READY_PREFIX: Final = f"{KEY_PREFIX}result-ready:"
RESULT_READY_TTL_S: Final = 300
# Keys one blocking wait watches at most; a longer wait list is watched in turns.
RESULT_READY_WATCH_MAX: Final = 256
CACHE_KEY_PREFIX: Final = f"{KEY_PREFIX}cache:"
CACHE_TAG_PREFIX: Final = f"{KEY_PREFIX}cachetag:"
CACHE_INVALIDATION_CHANNEL: Final = f"{KEY_PREFIX}cache-invalidate"
CACHE_STATS_KEY_PREFIX: Final = f"{KEY_PREFIX}cachestats:"
SINGLE_FLIGHT_PREFIX: Final = f"{KEY_PREFIX}inflight:"
ALERT_KEY_PREFIX: Final = f"{KEY_PREFIX}alert:"

# Provider batch limits (OpenAI: 50,000 requests / 200 MB per file, one model per file;
# Anthropic: 100,000 requests / 256 MB per batch).
BATCH_LIMITS: Final = {
    "openai": (50_000, 200 * 1024 * 1024),
    "anthropic": (100_000, 256 * 1024 * 1024),
    "simulated": (100_000, 256 * 1024 * 1024),
}
# A task retry waits at most this long (its backoff is capped here); a requeued job's message
# is due within this plus a lease before the sweepers send it again.
MAX_RETRY_COUNTDOWN_S: Final = 60.0

# Limits.
MAX_JOB_ID_LENGTH: Final = 128
MAX_METADATA_BYTES: Final = 4096
# A job is a shallow document (messages, params, metadata); anything deeper is refused before
# JSON encoding or validation could exhaust the recursion limit.
MAX_JOB_DEPTH: Final = 32
# Integers beyond this cannot be a token count, seed or metadata value anyone means.
MAX_JOB_INT: Final = 2**64
# Deadlines outside these UTC years are refused (dates near year 1 or 9999 overflow on the
# way to and from SQL).
DEADLINE_YEARS: Final = (1970, 9000)
MAX_FALLBACKS: Final = 5

# Budget utilisation (max over scopes, a decimal fraction such as "0.97") that beat publishes
# for worker autoscalers; a missing key means no budget pressure is known.
BUDGET_UTILISATION_KEY: Final = f"{KEY_PREFIX}budget:utilisation"
# The Celery event type of a budget threshold crossing (fields: BudgetAlert.fields()).
BUDGET_ALERT_EVENT: Final = "agentqueue-budget-alert"
# A job waiting for budget room held by reservations asks again after this long at first,
# growing with its wait up to the cap: settlements free room within about one provider call.
BUDGET_WAIT_FIRST_BACKOFF_S: Final = 0.25
BUDGET_WAIT_MAX_BACKOFF_S: Final = 2.0
# Utilisation from which admission reads a budget's waiters to keep their priority order
# (below it a waiter is rare: it would need more than half the limit).
BUDGET_WAITERS_MATTER_AT: Final = Decimal("0.5")

# Cache layout details (cache package): key scheme version, single-flight keys, stats, epoch.
CACHE_KEY_VERSION: Final = 1
CACHE_EPOCH_KEY: Final = f"{CACHE_KEY_PREFIX}epoch"
CACHE_STATS_WORKER_PREFIX: Final = f"{CACHE_STATS_KEY_PREFIX}worker:"
SINGLE_FLIGHT_LOCK_PREFIX: Final = f"{SINGLE_FLIGHT_PREFIX}lock:"
SINGLE_FLIGHT_RESULT_PREFIX: Final = f"{SINGLE_FLIGHT_PREFIX}result:"
SINGLE_FLIGHT_DONE_CHANNEL: Final = f"{KEY_PREFIX}inflight-done"
# A single-flight leader's result stays readable this long for followers that were polling.
SINGLE_FLIGHT_HANDOFF_TTL_MS: Final = 5000

# Provider answers whose settlement could not be written yet (ledger down): kept until the
# job's retry settles them, so the paid call is never made twice.
PENDING_ANSWER_PREFIX: Final = f"{KEY_PREFIX}pending-answer:"
# Sorted set of the job ids with a kept answer, scored by when it was kept: the sweep finds
# those a dead worker settled but never dropped without scanning the keyspace.
PENDING_ANSWER_INDEX_KEY: Final = f"{KEY_PREFIX}pending-answer-index"
# How many calls of unknown outcome a job's attempts left uncharged at its standing
# reservation (requests dropped in transit, then a retry): its next attempt charges them all,
# not just the one call a standing reservation alone tells of.
CARRIED_CALLS_PREFIX: Final = f"{KEY_PREFIX}carried-calls:"

# Provider rate limits shared by every worker (ratelimit package): per-limit state lives under
# `{RATE_LIMIT_PREFIX}{provider}:{model}:{key id}:...`; the set lists every limit seen.
RATE_LIMIT_PREFIX: Final = f"{KEY_PREFIX}ratelimit:"
RATE_LIMIT_REGISTRY_KEY: Final = f"{KEY_PREFIX}ratelimit-index"
BREAKER_PREFIX: Final = f"{KEY_PREFIX}breaker:"
FALLBACK_COUNTS_KEY: Final = f"{KEY_PREFIX}fallbacks"
# One hash per (agent_type, model): how many in-worker groups of each size were flushed.
BATCH_SIZES_PREFIX: Final = f"{KEY_PREFIX}batch-sizes:"
