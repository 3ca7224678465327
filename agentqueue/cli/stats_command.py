"""`agentqueue stats`: jobs by status, queue depths, cache tiers, money and per-model provider
limits (limit, current use, jobs waiting, fallbacks taken, breaker state), in one view."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import click
import redis
from rich.console import Console
from rich.table import Table

from agentqueue.constants import QUEUES
from agentqueue.persistence import jobs_repository
from agentqueue.persistence.engine import get_sessionmaker
from agentqueue.persistence.ledger_reports import ledger_totals
from agentqueue.persistence.migrate import ensure_embedded_schema
from agentqueue.ratelimit.limits_file import load_rate_limits
from agentqueue.ratelimit.model_stats import collect_model_stats
from agentqueue.settings import get_settings


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
            "spent_usd": str(Decimal(money[1])),
            "avoided_by_cache_usd": str(Decimal(money[2])),
            "saved_by_tier_usd": str(Decimal(money[3])),
        },
        "cache": cache_stats,
        "models": models,
    }


@click.command()
@click.option("--json", "as_json", is_flag=True)
def stats(as_json: bool) -> None:
    """Jobs by status, queue depths, cache hit rates and money spent or avoided."""
    data = collect_stats()
    if as_json:
        click.echo(json.dumps(data, default=str, sort_keys=True))
        return
    console = Console()
    jobs = Table("status", "jobs", title="jobs")
    for status, count in sorted(data["jobs"].items()):
        jobs.add_row(status, str(count))
    queues = Table("queue", "waiting", title="queues")
    for queue, depth in data["queues"].items():
        queues.add_row(queue, str(depth))
    cache = Table("tier", "hits", "misses", "errors", title="cache")
    for tier in ("l1", "l2", "l3"):
        counters = data["cache"].get(tier, {})
        cache.add_row(
            tier,
            str(counters.get("hits", 0)),
            str(counters.get("misses", 0)),
            str(counters.get("errors", 0)),
        )
    models = Table(
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
    console.print(jobs, queues, cache, models)
    console.print(
        f"spent ${ledger['spent_usd']}, avoided by cache ${ledger['avoided_by_cache_usd']}, "
        f"saved by cheaper tiers ${ledger['saved_by_tier_usd']} "
        f"({ledger['entries']} ledger entries)"
    )
