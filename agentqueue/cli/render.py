"""Tables for job results, printed with rich."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from agentqueue.jobs import JobResult


def print_results_table(results: Sequence[JobResult], *, limit: int = 50) -> None:
    table = Table("job", "status", "model", "tokens in/out", "cost $", "cache", "error")
    for result in results[:limit]:
        table.add_row(
            result.job_id,
            result.status.value,
            result.model or "",
            f"{result.usage.input_tokens}/{result.usage.output_tokens}",
            result.cost_usd,
            result.cache_tier or "",
            result.error.code if result.error else "",
        )
    console = Console()
    console.print(table)
    if len(results) > limit:
        console.print(f"... and {len(results) - limit} more")
