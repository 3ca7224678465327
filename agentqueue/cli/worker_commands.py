"""`agentqueue worker|beat|flower`: thin wrappers over Celery's own commands."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence

import click

from agentqueue.constants import QUEUES
from agentqueue.settings import get_settings
from agentqueue.workers.supervisor import Supervisor, default_processes


def _celery(argv: list[str]) -> None:
    from agentqueue.workers.app import app

    app.start(argv)


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--pool",
    "pool_name",
    default=None,
    help="Worker pool from AGENTQUEUE_POOLS (interactive, batch, ...): its queues and "
    "autoscaling range.",
)
@click.option(
    "--queues", "-Q", default=None, help="Queues to consume (default: all, or the pool's)."
)
@click.option(
    "--concurrency",
    "-c",
    type=int,
    default=None,
    help="Threads (default AGENTQUEUE_WORKER_CONCURRENCY).",
)
@click.option("--loglevel", "-l", default=None, help="Log level (default AGENTQUEUE_LOG_LEVEL).")
@click.option("--hostname", "-n", default=None, help="Worker node name.")
@click.option(
    "--processes",
    type=click.IntRange(1, 256),
    default=None,
    help="Celery worker processes to run and supervise, each with its own threads "
    "(default: one per CPU).",
)
@click.option(
    "--max-restarts",
    type=click.IntRange(0, 1000),
    default=5,
    show_default=True,
    help="Give up (exit non-zero) when one process dies more often than this within a minute.",
)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(
    pool_name: str | None,
    queues: str | None,
    concurrency: int | None,
    loglevel: str | None,
    hostname: str | None,
    processes: int | None,
    max_restarts: int,
    celery_args: tuple[str, ...],
) -> None:
    """Start worker processes (resizable threads pool) and restart any that dies.

    Extra arguments go to each `celery worker`. With AGENTQUEUE_METRICS_PORT set, its
    processes count into PROMETHEUS_MULTIPROC_DIR (emptied at start; a private directory when
    unset) and /metrics is served on that port.
    """
    settings = get_settings()
    processes = processes or default_processes()
    if settings.metrics_port:
        from agentqueue.metrics import multiproc

        multiproc.prepare(wipe=True)
    argv = ["worker", "--loglevel", loglevel or settings.log_level, "--task-events"]
    if pool_name:
        from agentqueue.scheduler.pools import get_pool, load_pools

        spec = get_pool(load_pools(settings), pool_name)
        argv += ["--queues", queues or ",".join(spec.queues), "--autoscale", spec.autoscale]
    else:
        argv += [
            "--queues",
            queues or ",".join(QUEUES),
            "--concurrency",
            str(concurrency or settings.worker_concurrency),
        ]
    # No --pool: Celery's option knows only its own pool names and would replace the
    # configured resizable one.
    commands = [
        [*CELERY_COMMAND, *argv, *_hostname_args(hostname, index, processes), *celery_args]
        for index in range(1, processes + 1)
    ]
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    code = Supervisor(commands, max_restarts=max_restarts).run()
    if code:
        sys.exit(code)


CELERY_COMMAND = (sys.executable, "-m", "celery", "-A", "agentqueue.workers.app")


def _hostname_args(hostname: str | None, index: int, processes: int) -> list[str]:
    """Each process needs its own node name: `name@host` becomes `name-2@host`."""
    if processes == 1:
        return ["--hostname", hostname] if hostname else []
    name, at, host = (hostname or "worker@%h").partition("@")
    return ["--hostname", f"{name}-{index}{at}{host or ''}"]


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--loglevel", "-l", default=None, help="Log level (default AGENTQUEUE_LOG_LEVEL).")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat(loglevel: str | None, celery_args: tuple[str, ...]) -> None:
    """Start Celery beat with agentqueue's schedule. Extra arguments go to `celery beat`."""
    settings = get_settings()
    schedule = settings.data_dir / "celerybeat-schedule"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _celery(
        [
            "beat",
            "--loglevel",
            loglevel or settings.log_level,
            "--schedule",
            str(schedule),
            *celery_args,
        ]
    )


_FLOWER_AUTH_OPTIONS = ("--basic-auth", "--basic_auth", "--auth")
_FLOWER_AUTH_ENV = ("FLOWER_BASIC_AUTH", "FLOWER_AUTH")


def flower_auth_warning(args: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """The warning to print when Flower would start without any authentication, else None."""
    if any(arg.split("=", 1)[0] in _FLOWER_AUTH_OPTIONS for arg in args):
        return None
    if any(environ.get(name) for name in _FLOWER_AUTH_ENV):
        return None
    return (
        "warning: Flower is starting without authentication: anyone who can reach its port "
        "sees every job and can revoke tasks or shut workers down; pass "
        "--basic-auth=user:password (or set FLOWER_BASIC_AUTH)"
    )


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("flower_args", nargs=-1, type=click.UNPROCESSED)
def flower(flower_args: tuple[str, ...]) -> None:
    """Start Flower against the same broker; warns unless --basic-auth=user:pass (or --auth)
    is given. Extra arguments go to `celery flower`."""
    warning = flower_auth_warning(flower_args, os.environ)
    if warning:
        click.echo(warning, err=True)
    _celery(["flower", *flower_args])
