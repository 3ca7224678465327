"""`agentqueue demo`."""

from __future__ import annotations

import sys

import click


@click.command()
@click.option("--jobs", "-n", default=120, show_default=True, help="How many jobs to submit.")
@click.option("--concurrency", "-c", default=32, show_default=True, help="Worker threads.")
@click.option(
    "--timeout", default=120.0, show_default=True, help="Seconds to wait for the jobs to finish."
)
@click.option("--embedded", is_flag=True, help="Use a private Redis even if one answers.")
def demo(jobs: int, concurrency: int, timeout: float, embedded: bool) -> None:
    """Run a sample workload end to end (starts a private Redis if none answers)."""
    from agentqueue.demo.runner import run_demo

    sys.exit(run_demo(jobs=jobs, concurrency=concurrency, timeout=timeout, embedded_redis=embedded))
