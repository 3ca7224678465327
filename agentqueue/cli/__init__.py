"""The `agentqueue` command."""

from __future__ import annotations

import sys

import click

from agentqueue.cli.budget_commands import budget
from agentqueue.cli.db_commands import db
from agentqueue.cli.demo_command import demo
from agentqueue.cli.errors import run_cli
from agentqueue.cli.job_commands import cancel, status, submit
from agentqueue.cli.metrics_command import metrics
from agentqueue.cli.plan_commands import plan
from agentqueue.cli.report_command import report
from agentqueue.cli.stats_command import stats
from agentqueue.cli.worker_commands import beat, flower, worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="agentqueue")
def cli() -> None:
    """Run LLM agent jobs on Celery workers, with budgets, batching, deferral and caching."""


for command in (worker, beat, flower, submit, status, cancel, demo, db, plan, budget, stats):
    cli.add_command(command)
cli.add_command(metrics)
cli.add_command(report)


def main() -> None:
    sys.exit(run_cli(cli))
