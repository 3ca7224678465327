"""`agentqueue flower` warns when it would start without authentication."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from agentqueue.cli.worker_commands import flower_auth_warning
from tests.support.services import free_port


def test_flower_without_auth_is_warned_about_and_with_auth_is_not() -> None:
    assert flower_auth_warning(["--port=5555"], {}) is not None
    assert flower_auth_warning(["--basic-auth=ops:secret"], {}) is None
    assert flower_auth_warning(["--basic-auth", "ops:secret"], {}) is None
    assert flower_auth_warning(["--auth=.*@example.com"], {}) is None
    assert flower_auth_warning([], {"FLOWER_BASIC_AUTH": "ops:secret"}) is None
    assert flower_auth_warning([], {"FLOWER_BASIC_AUTH": ""}) is not None


def test_flower_started_without_basic_auth_prints_the_warning(
    redis_url: str, tmp_path: Path
) -> None:
    """Given `agentqueue flower` with no --basic-auth, Then stderr warns before Flower runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTQUEUE_", "FLOWER_"))}
    env.update(AGENTQUEUE_REDIS_URL=redis_url, AGENTQUEUE_DATA_DIR=str(tmp_path))
    stderr_file = tmp_path / "flower.err"
    with stderr_file.open("wb") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentqueue.cli",
                "flower",
                f"--port={free_port()}",
                "--address=127.0.0.1",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            deadline = time.monotonic() + 30
            while "warning:" not in stderr_file.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            process.terminate()
            process.wait(10)
    first = stderr_file.read_text().splitlines()[0]
    assert first.startswith("warning: Flower is starting without authentication")
    assert "--basic-auth=user:password" in first
