"""`agentqueue demo` runs the whole path on the embedded default: private Redis, SQLite."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from agentqueue.demo.embedded_redis import EmbeddedRedis, redis_answers

EXPONENT = re.compile(r"\dE[+-]?\d")
MONEY = r"\$([\d,]+\.\d+)"


def _demo_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """No AGENTQUEUE_* from the caller: the demo's own defaults, as on a fresh machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTQUEUE_")}
    env["XDG_DATA_HOME"] = str(tmp_path)
    env.update({f"AGENTQUEUE_{name.upper()}": value for name, value in settings.items()})
    return env


def _run_demo(env: dict[str, str], jobs: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentqueue.cli", "demo", "--embedded", "--jobs", str(jobs)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _line(output: str, prefix: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(prefix))


def _amount(text: str) -> Decimal:
    found = re.search(MONEY, text)
    assert found, text
    return Decimal(found.group(1).replace(",", ""))


def _window_excluding_now() -> str:
    start = datetime.now(UTC) + timedelta(hours=6)
    return f"{start:%H}:00-{start + timedelta(hours=1):%H}:00"


def test_demo_runs_on_a_private_redis_and_sqlite_and_says_what_it_saved(tmp_path: Path) -> None:
    """Given no configured services and a time outside the off-peak window, the demo starts
    its own Redis 6.2, runs jobs with no cache errors in its logs, and its summary states the
    batching, the cache hits and money avoided, the deferred jobs and their saving; its closing
    hint works after the private Redis has stopped."""
    env = _demo_env(tmp_path, offpeak_windows=_window_excluding_now(), timezone="UTC")

    completed = _run_demo(env, 40)

    out = completed.stdout
    assert completed.returncode == 0, out[-3000:] + completed.stderr[-3000:]
    assert "40 jobs in" in out and "started a private Redis" in out
    data_dir = tmp_path / "agentqueue"
    assert (data_dir / "agentqueue.db").exists()
    assert not (data_dir / "demo-redis" / "redis.sock").exists()
    logs = (data_dir / "demo-worker.log").read_text(errors="replace") + completed.stderr + out
    assert "cache tier" not in logs and "ResponseError" not in logs
    assert not EXPONENT.search(out)

    batching = _line(out, "batching:")
    assert re.search(r"40 jobs travelled in \d+ packed batch tasks", batching), batching
    cache = _line(out, "cache:")
    assert int(re.search(r"cache: (\d+) jobs", cache).group(1)) > 0  # type: ignore[union-attr]
    assert _amount(cache) > 0, cache
    deferral = _line(out, "deferral:")
    deferred = re.search(r"deferral: (\d+) low-priority jobs were deferred", deferral)
    flex = re.search(r"(\d+) of them ran on the flex tier, saving", deferral)
    assert deferred and int(deferred.group(1)) > 0, deferral
    assert flex and int(flex.group(1)) > 0 and _amount(deferral) > 0, deferral
    saved = _line(out, "saved:")
    # Each figure is rounded for people, so the parts need not add up to the digit.
    assert _amount(saved) >= max(_amount(cache), _amount(deferral)), saved

    hint = re.search(r"`([^`]+ budget history)`", out)
    assert hint, out[-1000:]
    argv = shlex.split(hint.group(1))
    if argv[0] in ("agentqueue", Path(sys.executable).name):
        argv[0] = sys.executable
        argv[1:1] = [] if argv[1:2] == ["-m"] else ["-m", "agentqueue.cli"]
    history = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert history.returncode == 0, history.stderr
    assert "gpt-5-mini" in history.stdout and not EXPONENT.search(history.stdout)


def test_demo_inside_the_off_peak_window_says_nothing_was_deferred(tmp_path: Path) -> None:
    """Given a run inside the off-peak window, the summary says low jobs ran at once, and
    claims no deferral."""
    env = _demo_env(tmp_path, offpeak_windows="00:00-24:00")

    completed = _run_demo(env, 20)

    out = completed.stdout
    assert completed.returncode == 0, out[-3000:] + completed.stderr[-3000:]
    deferral = _line(out, "deferral:")
    assert "inside the off-peak window now (00:00-24:00" in deferral
    assert "none was deferred" in deferral and "were deferred" not in out
    assert "cheaper tier $0.00" in _line(out, "saved:")


def test_embedded_redis_is_a_real_server_on_a_unix_socket(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "r").start()
    try:
        assert redis_answers(server.url)
    finally:
        server.stop()
    assert not redis_answers(server.url)
