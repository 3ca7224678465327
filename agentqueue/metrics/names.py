"""Every metric agentqueue exports, by name (the Grafana dashboard may query only these)."""

from __future__ import annotations

from typing import Final

PREFIX: Final = "agentqueue_"

# Counted by workers as groups of jobs finish (multiprocess: summed over a worker's processes).
JOBS: Final = f"{PREFIX}jobs"  # counter {outcome, agent_type, model, priority}
SPEND_USD: Final = f"{PREFIX}spend_usd"  # counter {model, agent_type, tenant}
SAVED_USD: Final = f"{PREFIX}saved_usd"  # counter {lever, model}
CACHE_HITS: Final = f"{PREFIX}cache_hits"  # counter {tier}
GROUP_SIZE: Final = f"{PREFIX}group_size"  # histogram: jobs run together in one group step
JOB_LATENCY_S: Final = f"{PREFIX}job_latency_seconds"  # histogram {priority}: submit to final
PROVIDER_LATENCY_S: Final = f"{PREFIX}provider_latency_seconds"  # histogram {model}
PROVIDER_ERRORS: Final = f"{PREFIX}provider_errors"  # counter {model, code}

# Read from SQL and Redis at scrape time (workers and `agentqueue metrics`).
BUDGET_UTILISATION: Final = f"{PREFIX}budget_utilisation"  # gauge {scope, period}
BUDGET_SPENT_USD: Final = f"{PREFIX}budget_spent_usd"  # gauge {scope, period}
BUDGET_RESERVED_USD: Final = f"{PREFIX}budget_reserved_usd"  # gauge {scope, period}
BUDGET_LIMIT_USD: Final = f"{PREFIX}budget_limit_usd"  # gauge {scope, period}
QUEUE_DEPTH: Final = f"{PREFIX}queue_depth"  # gauge {queue}
DEFERRED_JOBS: Final = f"{PREFIX}deferred_jobs"  # gauge {priority}: the off-peak backlog
CACHE_TIER_LOOKUPS: Final = f"{PREFIX}cache_tier_lookups"  # counter {tier, result}, all workers

COUNTERS: Final = (JOBS, SPEND_USD, SAVED_USD, CACHE_HITS, PROVIDER_ERRORS, CACHE_TIER_LOOKUPS)
HISTOGRAMS: Final = (GROUP_SIZE, JOB_LATENCY_S, PROVIDER_LATENCY_S)
GAUGES: Final = (
    BUDGET_UTILISATION,
    BUDGET_SPENT_USD,
    BUDGET_RESERVED_USD,
    BUDGET_LIMIT_USD,
    QUEUE_DEPTH,
    DEFERRED_JOBS,
)


def exposed_series_names() -> frozenset[str]:
    """The sample names a scrape shows (counters end in _total, histograms in _bucket ...)."""
    names = {f"{name}_total" for name in COUNTERS} | set(GAUGES)
    for name in HISTOGRAMS:
        names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return frozenset(names)
