"""`agentqueue stats`: jobs by status, queue depths, cache tiers, money and per-model provider
limits (limit, current use, jobs waiting, fallbacks taken, breaker state), in one view."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import click
import redis

from agentqueue.constants import QUEUES
from agentqueue.money import exact_usd, format_usd
from agentqueue.persistence import jobs_repository
from agentqueue.persistence.engine import get_sessionmaker
from agentqueue.persistence.ledger_reports import ledger_totals
from agentqueue.persistence.migrate import ensure_embedded_schema
from agentqueue.ratelimit.limits_file import load_rate_limits
from agentqueue.ratelimit.model_stats import collect_model_stats
from agentqueue.settings import get_settings
from agentqueue.terminal import emit, new_table, wide_option


def collect_stats() -> dict[str, Any]:
    from agentqueue.cache.tiered import TieredCache

    settings = get_settings()
    ensure_embedded_schema(settings.resolved_database_url, auto_migrate=settings.auto_migrate)
    sessions = get_sessionmaker(settings.resolved_database_url)
    with sessions() as session:
        by_status = jobs_repository.count_by_status(session)
        money = ledger_totals(session)
    client = redis.Redis.from_url(settings.redis_url)
    depths = {queue: int(client.llen(queue)) for queue in QUEUES}
    models = collect_model_stats(client, load_rate_limits(settings.rate_limits_file))
    cache = TieredCache.from_settings(settings, sessions)
    try:
        cache_stats = cache.stats()
    finally:
        cache.close()
    return {
        "jobs": by_status,
        "queues": depths,
        "ledger": {
            "entries": int(money[0]),
            "spent_usd": exact_usd(Decimal(money[1])),
            "avoided_by_cache_usd": exact_usd(Decimal(money[2])),
            "saved_by_tier_usd": exact_usd(Decimal(money[3])),
        },
        "cache": cache_stats,
        "models": models,
    }


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (exact amounts) instead.")
@wide_option
def stats(as_json: bool, wide: bool) -> None:
    """Jobs by status, queue depths, cache hit rates and money spent or avoided."""
    data = collect_stats()
    if as_json:
        click.echo(json.dumps(data, default=str, sort_keys=True))
        return
    jobs = new_table("status", "jobs", title="jobs", numeric=("jobs",))
    for status, count in sorted(data["jobs"].items()):
        jobs.add_row(status, str(count))
    queues = new_table("queue", "waiting", title="queues", numeric=("waiting",))
    for queue, depth in data["queues"].items():
        queues.add_row(queue, str(depth))
    counters = ("hits", "misses", "errors")
    cache = new_table("tier", *counters, title="cache", numeric=counters)
    for tier in ("l1", "l2", "l3"):
        counts = data["cache"].get(tier, {})
        cache.add_row(tier, *(str(counts.get(counter, 0)) for counter in counters))
    models = new_table(
        "model",
        "limit rpm/tpm",
        "last minute req/tok",
        "waiting",
        "fallbacks",
        "breaker",
        title="models",
    )
    for row in data["models"]:
        limit = f"{row['rpm_limit'] or '-'}/{row['tpm_limit'] or '-'} ({row['limit_source']})"
        models.add_row(
            f"{row['provider']}:{row['model']}",
            limit,
            f"{row['requests_last_minute']}/{row['tokens_last_minute']}",
            str(row["waiting"]),
            str(row["fallbacks_taken"]),
            row["breaker"],
        )
    ledger = data["ledger"]
    money_line = (
        f"spent {format_usd(ledger['spent_usd'])}, "
        f"avoided by cache {format_usd(ledger['avoided_by_cache_usd'])}, "
        f"saved by cheaper tiers {format_usd(ledger['saved_by_tier_usd'])} "
        f"({ledger['entries']} ledger entries)"
    )
    emit(jobs, "", queues, "", cache, "", models, "", money_line, wide=wide)
