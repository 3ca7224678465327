"""The CLI reads well after a real run: money without exponents in every command (report too),
tables that fold to the terminal or print --wide without cutting ids, totals after
`submit --wait`, a status panel without Python reprs, and `-m auto` from options."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from agentqueue.budget.catalog import load_catalog
from agentqueue.cli import cli
from agentqueue.money import format_usd
from agentqueue.settings import get_settings
from tests.support.pipeline import Pipeline, simple_job

# Decimal's str() of a ledger amount: "0E-10", "1.5E+3". Job ids are lower-case hex.
EXPONENT = re.compile(r"\dE[+-]?\d")
PLAIN_DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")
TERMINAL_80 = {"TTY_COMPATIBLE": "1", "COLUMNS": "80", "NO_COLOR": "1"}


@pytest.fixture
def run_cli(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """`run_cli(*args, env=None)`: the `agentqueue` command in-process on the pipeline."""
    for name, value in pipeline.env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()

    def run(*args: str, env: dict[str, str] | None = None, code: int = 0) -> Result:
        result = CliRunner().invoke(cli, list(args), env=env)
        assert result.exit_code == code, (args, result.output, result.exception)
        return result

    yield run
    get_settings.cache_clear()


def _money_fields(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith("_usd"):
                yield key, item
            yield from _money_fields(item)
    elif isinstance(value, list):
        for item in value:
            yield from _money_fields(item)


def _json_documents(output: str) -> list[Any]:
    text = output.strip()
    if text.startswith(("[", "{")) and "\n{" not in text:
        return [json.loads(text)]
    return [json.loads(line) for line in text.splitlines()]


def test_money_reads_well_in_every_command(
    pipeline: Pipeline, run_cli: Any, tmp_path: Path
) -> None:
    """Given a budget and a run with a cache hit (so the ledger holds zeros like 0E-10), When
    every money-showing command prints, Then no amount uses exponent notation, JSON amounts are
    exact plain decimals, and text amounts are the people's form of those exact values."""
    pipeline.start_worker()
    run_cli("budget", "set", "--scope", "global", "--period", "daily", "--limit", "5")
    repeated = simple_job(0, params={"temperature": 0})
    jobs = [dict(simple_job(i, params={"temperature": 0}), id=f"money-{i}") for i in range(3)]
    jobs.append(dict(repeated, id="money-repeat"))
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text("\n".join(json.dumps(job) for job in jobs) + "\n")
    ids = [job["id"] for job in jobs]

    table = run_cli("submit", "-f", str(jobs_file), "--wait", "--timeout", "60").stdout
    records = [json.loads(run_cli("status", i, "--json").stdout) for i in ids]
    outputs = {
        "submit --wait": table,
        "submit --wait --json": run_cli("submit", "-f", str(jobs_file), "--wait", "--json").stdout,
        "stats": run_cli("stats").stdout,
        "stats --json": run_cli("stats", "--json").stdout,
        "budget show": run_cli("budget", "show").stdout,
        "budget show --json": run_cli("budget", "show", "--json").stdout,
        "budget history": run_cli("budget", "history").stdout,
        "budget history --json": run_cli("budget", "history", "--json").stdout,
        "report": run_cli("report", "--since", "1d").stdout,
        **{f"status {i}": run_cli("status", i).stdout for i in ids},
    }

    for name, output in outputs.items():
        assert not EXPONENT.search(output), (name, output)
        if name.endswith("--json"):
            fields = [f for doc in _json_documents(output) for f in _money_fields(doc)]
            assert fields, name
            for key, value in fields:
                assert isinstance(value, str) and PLAIN_DECIMAL.match(value), (name, key, value)
        else:
            assert "$" in output, name
    assert any(value == "0" for key, value in _money_fields(json.loads(outputs["stats --json"])))
    costs = {record["job_id"]: Decimal(record["cost_usd"]) for record in records}
    assert costs["money-0"] > 0 and costs["money-repeat"] == 0
    for job_id, cost in costs.items():
        assert re.search(rf"│ cost +{re.escape(format_usd(cost))} ", outputs[f"status {job_id}"])
        row = next(line for line in table.splitlines() if line.startswith(job_id))
        assert format_usd(cost) in row.split()
    assert format_usd(costs["money-0"]) != "$0.00"
    total = format_usd(sum(costs.values(), Decimal(0)))
    assert "total: 4 jobs (4 succeeded); 1 from the cache; " in table
    assert table.rstrip().endswith(f"cost {total}")


def test_tables_fold_to_the_terminal_or_print_wide_and_status_is_a_panel(
    pipeline: Pipeline, run_cli: Any, tmp_path: Path
) -> None:
    """Given finished jobs with long ids, When `submit --wait` prints in an 80-column terminal,
    Then every line fits, nothing ends in an ellipsis and each id reads back whole from its
    folded column; with --wide each row is one line; `status` shows labelled lines."""
    pipeline.start_worker()
    ids = [f"a-rather-long-job-id-for-the-terminal-{n:02d}-{'x' * 20}" for n in range(3)]
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text(
        "\n".join(json.dumps(simple_job(n, id=job_id)) for n, job_id in enumerate(ids)) + "\n"
    )
    run_cli("submit", "-f", str(jobs_file), "--wait", "--timeout", "60")

    narrow = run_cli("submit", "-f", str(jobs_file), "--wait", env=TERMINAL_80).stdout
    wide = run_cli("submit", "-f", str(jobs_file), "--wait", "--wide", env=TERMINAL_80).stdout
    panel = run_cli("status", ids[0], env=TERMINAL_80).stdout

    lines = narrow.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in narrow
    header = next(i for i, line in enumerate(lines) if line.startswith("job"))
    width = lines[header].index("status")
    end = next(i for i, line in enumerate(lines) if line.startswith("total:"))
    first_column = "".join(line[:width].strip() for line in lines[header + 2 : end])
    assert first_column == "".join(ids)
    for job_id in ids:
        assert any(line.startswith(job_id) and "succeeded" in line for line in wide.splitlines())
    assert max(len(line) for line in wide.splitlines()) > 80
    assert max(len(line) for line in panel.splitlines()) <= 80
    assert "{" not in panel and "'" not in panel  # no dict or string reprs
    for label in ("status", "model", "tokens in/out", "cost", "submitted", "finished"):
        assert re.search(rf"│ {label} ", panel), label


def test_auto_model_from_the_command_line(pipeline: Pipeline, run_cli: Any) -> None:
    """Given `-m auto --min-quality 0.7`, the job runs on a catalog model of that quality;
    `--requirements` takes a JSON object and refuses anything else."""
    pipeline.start_worker()
    base = ("submit", "-a", "support-bot", "-m", "auto", "-M", "Where is my parcel?")

    by_quality = json.loads(
        run_cli(*base, "--min-quality", "0.7", "--wait", "--json", "--timeout", "60").stdout
    )
    by_cost = json.loads(
        run_cli(
            *base,
            "--requirements",
            '{"max_cost_usd": "0.01", "max_latency_ms": 5000}',
            "--wait",
            "--json",
            "--timeout",
            "60",
        ).stdout
    )
    refused = run_cli(*base, "--requirements", "cheap", code=2)
    missing = run_cli(*base, code=1)  # in-process, the error propagates (main prints it)

    catalog = load_catalog(None)
    assert by_quality["status"] == "succeeded", by_quality
    chosen = catalog.get(by_quality["model"])
    assert chosen is not None and chosen.quality >= 0.7
    assert by_cost["status"] == "succeeded" and catalog.get(by_cost["model"]) is not None
    assert "is not a JSON object" in refused.output
    assert getattr(missing.exception, "code", None) == "missing_requirements"
