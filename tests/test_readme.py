"""README.md stays true: every CLI command and option is documented, the test settings and the
log level are named, and the forecast example is valid JSON that `agentqueue plan` accepts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import click
from click.testing import CliRunner

from agentqueue.cli import cli
from agentqueue.cli.plan_commands import plan
from agentqueue.scheduler.capacity_plan import parse_forecast

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _commands(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, f"{path} {name}")
    else:
        yield path, command


def _row(path: str) -> str:
    """The README's command-table row of `path` (`agentqueue budget show`)."""
    pattern = re.compile(rf"^\| `{re.escape(path)}( [A-Z_]+)?` \|.*$", re.MULTILINE)
    found = pattern.search(README)
    assert found, f"document `{path}` in README.md's Command line table"
    return found.group(0)


def test_every_command_and_option_is_in_the_readme_table() -> None:
    commands = list(_commands(cli, "agentqueue"))
    assert len(commands) >= 15
    for path, command in commands:
        row = _row(path)
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            longest = max(param.opts, key=len)
            assert f"`{longest}" in row or f", {longest}" in row or f"/{longest}" in row, (
                f"document `{path} {longest}` in README.md's Command line table"
            )


def test_help_points_at_no_source_file() -> None:
    for path, command in _commands(cli, "agentqueue"):
        with click.Context(command, info_name=path) as context:
            text = command.get_help(context)
        assert not re.search(r"\w+/\w+\.py", text), (path, text)


def test_readme_names_the_venv_the_test_settings_and_the_commands_asked_about() -> None:
    for text in (
        ".venv/bin/agentqueue",
        "source .venv/bin/activate",
        "AGENTQUEUE_TEST_REDIS_URL",
        "AGENTQUEUE_TEST_POSTGRES_URL",
        "AGENTQUEUE_TEST_REDIS_DB",
        "AGENTQUEUE_LOG_LEVEL",
        "`agentqueue budget remove`",
        "`agentqueue db current`",
    ):
        assert text in README, text


def test_the_forecast_example_is_valid_json_that_plan_accepts(tmp_path: Path) -> None:
    section = README.split("### Capacity plan", 1)[1]
    block = re.search(r"```json\n(.*?)```", section, re.DOTALL)
    assert block, "the Capacity plan section shows the forecast as a ```json block"
    data = json.loads(block.group(1))
    forecast = parse_forecast(block.group(1))
    assert len(forecast.hours) == len(data["hours"]) == 2
    path = tmp_path / "forecast.json"
    path.write_text(block.group(1))

    result = CliRunner().invoke(plan, ["--forecast", str(path), "--json"])

    assert result.exit_code == 0, result.output
    planned = json.loads(result.stdout)
    assert {row["pool"] for row in planned["rows"]} == {"interactive", "batch"}
