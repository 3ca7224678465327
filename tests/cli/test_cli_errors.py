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
