"""Every failure the CLI meets ends in one line with a stable code, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AGENTQUEUE_")}
    return subprocess.run(
        [sys.executable, "-m", "agentqueue.cli", *args],
        env={**base, "AGENTQUEUE_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "env", "code"),
    [
        (
            ["status", "abc"],
            {"AGENTQUEUE_DATABASE_URL": "postgresql://postgres:pw-not-shown@127.0.0.1:1/x"},
            "database_unavailable",
        ),
        (["stats"], {"AGENTQUEUE_REDIS_URL": "redis://127.0.0.1:1/0"}, "redis_unavailable"),
        (
            ["submit", "-a", "x", "-m", "gpt-4o-mini", "-M", "hi"],
            {"AGENTQUEUE_REDIS_URL": "redis://127.0.0.1:1/0"},
            "broker_unavailable",
        ),
        (["worker", "--pool", "nope"], {}, "unknown_pool"),
        (["status", "abc"], {"AGENTQUEUE_TIMEZONE": "Mars/Olympus"}, "invalid_setting"),
        (["status", "abc"], {"AGENTQUEUE_POOLS": '{"all": {}}'}, "invalid_pools"),
        (["stats"], {"AGENTQUEUE_OFFPEAK_WINDOWS": "late"}, "invalid_offpeak_windows"),
        (["stats"], {"AGENTQUEUE_AUTO_MIGRATE": "false"}, "schema_missing"),
    ],
)
def test_failures_are_one_clear_line(
    tmp_path: Path, args: list[str], env: dict[str, str], code: str
) -> None:
    completed = _run(args, tmp_path, **env)
    assert completed.returncode == 2
    assert f"error: {code}:" in completed.stderr
    assert "Traceback" not in completed.stderr and "pw-not-shown" not in completed.stderr


def test_a_bad_setting_is_one_line_naming_its_field(tmp_path: Path) -> None:
    """Given a pool whose max is 0, any command says which value of which variable is wrong."""
    pools = '{"all": {"queues": ["critical", "high", "normal", "low"], "min": 1, "max": 0}}'

    completed = _run(["status", "abc"], tmp_path, AGENTQUEUE_POOLS=pools)

    assert completed.returncode == 2
    assert completed.stderr.startswith(
        "error: invalid_pools: AGENTQUEUE_POOLS.all.max is invalid: "
    )
    assert len(completed.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args", [["budget", "show"], ["budget", "history"], ["budget", "show", "--json"]]
)
def test_a_database_outage_reads_as_one_for_a_command(tmp_path: Path, args: list[str]) -> None:
    """Given the database down, budget commands say so and what to check; they do not speak
    the worker's language ("the job will be retried"): there is no job to retry."""
    down = {"AGENTQUEUE_DATABASE_URL": "postgresql+psycopg://postgres:pw-not-shown@127.0.0.1:1/x"}

    completed = _run(args, tmp_path, **down)

    assert completed.returncode == 2
    assert completed.stderr.startswith("error: database_unavailable: the database cannot be")
    assert "AGENTQUEUE_DATABASE_URL" in completed.stderr
    assert "retried" not in completed.stderr and "job" not in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1
    assert "pw-not-shown" not in completed.stderr
