"""`agentqueue submit --file jobs.jsonl --wait --json` and `agentqueue status ID --json`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from agentqueue.cli import cli
from agentqueue.settings import get_settings
from tests.support.pipeline import Pipeline, simple_job


def _cli_env(pipeline: Pipeline) -> dict[str, str]:
    return {**os.environ, **pipeline.env}


def test_submit_a_thousand_jobs_from_jsonl_and_wait(pipeline: Pipeline, tmp_path: Path) -> None:
    """Given a worker and a JSONL file of 1,000 jobs, submit --wait --json prints 1,000 final
    results, and status --json shows each final record."""
    pipeline.start_worker(concurrency=32)
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text("\n".join(json.dumps(simple_job(i)) for i in range(1000)) + "\n")

    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentqueue.cli",
            "submit",
            "--file",
            str(jobs_file),
            "--wait",
            "--json",
            "--timeout",
            "180",
        ],
        env=_cli_env(pipeline),
        capture_output=True,
        text=True,
        timeout=240,
    )

    assert completed.returncode == 0, completed.stderr[-2000:]
    lines = completed.stdout.strip().splitlines()
    assert len(lines) == 1000
    results = [json.loads(line) for line in lines]
    assert {r["status"] for r in results} == {"succeeded"}

    os.environ.update(pipeline.env)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        for result in results:
            shown = runner.invoke(cli, ["status", result["job_id"], "--json"])
            assert shown.exit_code == 0, shown.output
            record = json.loads(shown.output)
            assert record["status"] == "succeeded" and record["output"] == result["output"]
    finally:
        for name in pipeline.env:
            os.environ.pop(name, None)
        get_settings.cache_clear()


def test_submit_without_wait_prints_ids_and_a_bad_line_submits_nothing(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(simple_job(1, id="cli-1")) + "\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(simple_job(2, id="cli-2")) + "\n{not json\n")
    env = _cli_env(pipeline)

    ok = subprocess.run(
        [sys.executable, "-m", "agentqueue.cli", "submit", "-f", str(good)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    refused = subprocess.run(
        [sys.executable, "-m", "agentqueue.cli", "submit", "-f", str(bad)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    missing = subprocess.run(
        [sys.executable, "-m", "agentqueue.cli", "status", "nope"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert ok.returncode == 0 and ok.stdout.split() == ["cli-1", "queued"]
    assert refused.returncode == 2 and "invalid_json" in refused.stderr
    assert "line 2" in refused.stderr and "Traceback" not in refused.stderr
    assert missing.returncode == 2 and "job_not_found" in missing.stderr
    assert pipeline.queue.status("cli-1").status.value == "queued"


CLI = [sys.executable, "-m", "agentqueue.cli"]


def test_submit_of_a_typoed_model_is_refused_with_a_suggestion(pipeline: Pipeline) -> None:
    """`agentqueue submit -m gpt4o-mini` exits 2 with `unknown_model` and the right name."""
    refused = subprocess.run(
        [*CLI, "submit", "-a", "bot", "-m", "gpt4o-mini", "-M", "hello"],
        env=_cli_env(pipeline),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert refused.returncode == 2
    assert "unknown_model" in refused.stderr and "did you mean 'gpt-4o-mini'?" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_stats_shows_jobs_queues_cache_and_money(pipeline: Pipeline) -> None:
    """Given finished jobs, `agentqueue stats --json` counts them and the money they cost."""
    pipeline.start_worker()
    handles = pipeline.queue.submit_many([simple_job(i) for i in range(6)])
    pipeline.queue.wait([h.id for h in handles], timeout=30)

    shown = subprocess.run(
        [sys.executable, "-m", "agentqueue.cli", "stats", "--json"],
        env=_cli_env(pipeline),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["jobs"] == {"succeeded": 6}
    assert set(data["queues"]) == {
        "agentqueue.critical",
        "agentqueue.high",
        "agentqueue.normal",
        "agentqueue.low",
    }
    assert data["ledger"]["entries"] == 6 and float(data["ledger"]["spent_usd"]) > 0
    assert {"l1", "l2", "l3"} <= set(data["cache"])
