"""`agentqueue demo` runs the whole path on the embedded default: private Redis, SQLite."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from agentqueue.demo.embedded_redis import EmbeddedRedis, redis_answers


def test_demo_runs_on_a_private_redis_and_sqlite(tmp_path: Path) -> None:
    """Given no configured services, the demo starts its own Redis, runs jobs, and cleans up."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTQUEUE_")}
    env["XDG_DATA_HOME"] = str(tmp_path)

    completed = subprocess.run(
        [sys.executable, "-m", "agentqueue.cli", "demo", "--embedded", "--jobs", "40"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "40 jobs in" in completed.stdout
    # Low jobs (deferred, or inside the window) ran in the simulated provider's batch mode.
    assert re.search(r"; [1-9]\d* ran in provider batches", completed.stdout), completed.stdout
    assert "started a private Redis" in completed.stdout
    assert (tmp_path / "agentqueue" / "agentqueue.db").exists()
    assert not (tmp_path / "agentqueue" / "demo-redis" / "redis.sock").exists()


def test_embedded_redis_is_a_real_server_on_a_unix_socket(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "r").start()
    try:
        assert redis_answers(server.url)
    finally:
        server.stop()
    assert not redis_answers(server.url)
