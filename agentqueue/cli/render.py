"""Job results for people: a table with totals (`submit --wait`) and a panel (`status`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from decimal import Decimal

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from agentqueue.jobs import JobResult
from agentqueue.money import format_usd
from agentqueue.terminal import emit, new_table

RESULT_HEADERS = ("job", "status", "model", "tokens in/out", "cost", "cache", "error")


def _tokens(input_tokens: int, output_tokens: int) -> str:
    return f"{input_tokens:,}/{output_tokens:,}"


def results_totals(results: Sequence[JobResult]) -> str:
    """One line: how many jobs ended how, cache hits, tokens and the money, over all `results`."""
    statuses = Counter(result.status.value for result in results)
    ended = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
    cost = sum((result.cost for result in results), Decimal(0))
    hits = sum(result.cache_tier is not None for result in results)
    tokens = _tokens(
        sum(r.usage.input_tokens for r in results), sum(r.usage.output_tokens for r in results)
    )
    return (
        f"total: {len(results)} jobs ({ended}); {hits} from the cache; "
        f"tokens in/out {tokens}; cost {format_usd(cost)}"
    )


def results_table(results: Sequence[JobResult], *, limit: int = 50) -> Table:
    table = new_table(*RESULT_HEADERS, numeric=("tokens in/out", "cost"))
    for result in results[:limit]:
        table.add_row(
            result.job_id,
            result.status.value,
            result.model or "",
            _tokens(result.usage.input_tokens, result.usage.output_tokens),
            format_usd(result.cost),
            result.cache_tier or "",
            result.error.code if result.error else "",
        )
    return table


def print_results(results: Sequence[JobResult], *, wide: bool = False, limit: int = 50) -> None:
    """The table (first `limit` rows), then the totals line over every result."""
    shown: list[RenderableType | str] = [results_table(results, limit=limit)]
    if len(results) > limit:
        shown.append(f"... and {len(results) - limit} more (use --json for all)")
    shown.append(results_totals(results))
    emit(*shown, wide=wide)


def _when(result: JobResult) -> list[tuple[str, str]]:
    moments = (
        ("submitted", result.submitted_at),
        ("started", result.started_at),
        ("finished", result.finished_at),
        ("released after", result.release_after),
    )
    return [(name, f"{moment:%Y-%m-%d %H:%M:%S} UTC") for name, moment in moments if moment]


def status_panel(result: JobResult) -> Panel:
    """A job's record as labelled lines (no Python reprs), its output or error below."""
    fields: list[tuple[str, str]] = [("job", result.job_id), ("status", result.status.value)]
    for name, value in (
        ("agent type", result.agent_type),
        ("tenant", result.tenant),
        ("priority", result.priority.value if result.priority else None),
        ("model", result.model),
        ("model choice", result.model_reason),
        ("provider", result.provider),
        ("service tier", result.service_tier),
        ("cache", result.cache_tier),
        ("budget action", result.budget_action),
    ):
        if value:
            fields.append((name, value))
    fields.append(("tokens in/out", _tokens(result.usage.input_tokens, result.usage.output_tokens)))
    if result.context_tokens_saved:
        fields.append(("context pruned", f"{result.context_tokens_saved:,} tokens"))
    fields.append(("cost", format_usd(result.cost)))
    fields.append(("attempts", str(result.attempts)))
    fields.extend(_when(result))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for name, value in fields:
        grid.add_row(name, value)
    body: list[RenderableType] = [grid]
    if result.error is not None:
        body += [Text(""), Text(f"error {result.error.code}: {result.error.message}", "red")]
    if result.output:
        body += [Text(""), Text(result.output)]
    return Panel(Group(*body), expand=False)
