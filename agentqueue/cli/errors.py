"""Turn our errors into one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import click

from agentqueue.errors import AgentQueueError
from agentqueue.settings import SettingsError


def run_cli(group: click.Group) -> int:
    try:
        group.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except SettingsError as exc:
        click.echo(f"error: {exc.code}: {exc}", err=True)
        return 2
    except AgentQueueError as exc:
        click.echo(f"error: {exc.code}: {exc.message}", err=True)
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return 0
