"""Turn our errors into one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import click
import redis
from sqlalchemy.exc import DBAPIError

from agentqueue.errors import AgentQueueError, DatabaseUnavailable


def _schema_missing(error: DBAPIError) -> bool:
    text = str(error.orig)
    return "no such table" in text or getattr(error.orig, "sqlstate", None) == "42P01"


def _database_unavailable(cause: BaseException | None) -> str:
    driver_error = getattr(cause, "orig", None) or cause
    # The driver's text can carry the connection string; name the setting instead.
    reason = f" ({type(driver_error).__name__})" if driver_error is not None else ""
    return (
        f"error: database_unavailable: the database cannot be reached{reason}; "
        "check AGENTQUEUE_DATABASE_URL and that it is up"
    )


def run_cli(group: click.Group) -> int:
    try:
        group.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except DatabaseUnavailable as exc:
        # Raised from a transaction (the driver error chained), its sentence speaks to a worker
        # ("the job will be retried"); a command has no job to retry, so say what to check.
        chained = exc.__cause__ is not None
        click.echo(
            _database_unavailable(exc.__cause__)
            if chained
            else f"error: {exc.code}: {exc.message}",
            err=True,
        )
        return 2
    except AgentQueueError as exc:
        click.echo(f"error: {exc.code}: {exc.message}", err=True)
        return 2
    except DBAPIError as exc:
        if _schema_missing(exc):
            click.echo(
                "error: schema_missing: the database has no agentqueue tables yet; "
                "run `agentqueue db upgrade`",
                err=True,
            )
            return 2
        click.echo(_database_unavailable(exc), err=True)
        return 2
    except redis.RedisError as exc:
        click.echo(
            f"error: redis_unavailable: Redis cannot be reached ({type(exc).__name__}); "
            "check AGENTQUEUE_REDIS_URL and that it is up",
            err=True,
        )
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return 0
