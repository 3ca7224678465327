"""A progress bar on stderr while waiting for many jobs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from agentqueue.jobs import JobResult

if TYPE_CHECKING:
    from agentqueue.client import AgentQueue


def wait_with_progress(
    queue: AgentQueue, ids: Sequence[str], *, timeout: float | None, label: str = "jobs"
) -> dict[str, JobResult]:
    console = Console(stderr=True)
    columns = (TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=len(ids))
        return queue.wait(ids, timeout=timeout, on_result=lambda _: progress.advance(task))
