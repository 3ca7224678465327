"""10,000 fuzzed jobs: only agentqueue's own coded errors, nothing recorded or sent for them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from agentqueue.cli import cli
from agentqueue.cli.errors import run_cli
from agentqueue.client import AgentQueue
from agentqueue.constants import QUEUES
from agentqueue.errors import AgentQueueError
from agentqueue.persistence.job_table import JobRecord
from agentqueue.settings import get_settings
from tests.support.fuzz_jobs import REQUIRED_KINDS, fuzz_cases
from tests.support.pipeline import Pipeline, simple_job
from tests.support.services import free_port

SEED = 20261130
# The stable codes a refused job may carry: the `invalid_job` family and its neighbours.
REFUSAL_CODES = re.compile(
    r"^(invalid_[a-z_]+|missing_field|unknown_field|not_an_object|job_too_large|"
    r"missing_requirements|duplicate_job_id|job_id_conflict|tenant_mismatch|unknown_model)$"
)


def _messages(client: redis.Redis) -> int:
    return sum(int(client.llen(queue)) for queue in QUEUES)


def test_10000_fuzzed_jobs_are_refused_with_codes_and_leave_nothing(
    pipeline: Pipeline, redis_url: str
) -> None:
    """Given no worker, when 10,000 fuzzed jobs (every hostile kind of issue 11 included) are
    submitted one by one, then each is accepted or refused with a stable coded agentqueue
    error, and exactly the accepted ones have a row and a message."""
    queue = pipeline.queue
    accepted: set[str] = set()
    refused_kinds: set[str] = set()
    escaped: list[str] = []
    started = time.monotonic()
    for case in fuzz_cases(10_000, SEED):
        try:
            handle = queue.submit(case.job)
        except AgentQueueError as error:
            assert REFUSAL_CODES.match(error.code), (case.kind, error.code, error.message)
            assert "Traceback" not in str(error) and "\n" not in error.message
            refused_kinds.add(case.kind)
        except Exception as error:  # anything else is a bug this test exists to find
            escaped.append(f"{case.kind}: {type(error).__name__}")
        else:
            accepted.add(handle.id)
    elapsed = time.monotonic() - started
    assert escaped == []
    assert set(REQUIRED_KINDS) <= refused_kinds
    print(f"10,000 fuzzed jobs in {elapsed:.1f} s ({len(accepted)} valid among them)")

    with queue.sessions() as session:
        rows = set(session.scalars(select(JobRecord.id)))
    assert rows == accepted
    client = redis.Redis.from_url(redis_url)
    assert _messages(client) == len(accepted)
    client.close()


BAD_IDS: list[object] = ["abc\x00def", "abc\udc80", "\ud800", "", "x" * 500, 42]


def test_status_cancel_and_wait_refuse_ids_that_cannot_be_ids(pipeline: Pipeline) -> None:
    """Given an id holding a NUL, a surrogate or junk, status/cancel/wait refuse it with
    `invalid_job_id` before any query (no driver error)."""
    for job_id in BAD_IDS:
        for call in (
            lambda i=job_id: pipeline.queue.status(i),  # type: ignore[misc]
            lambda i=job_id: pipeline.queue.cancel(i),  # type: ignore[misc]
            lambda i=job_id: pipeline.queue.wait([i], timeout=0.1),  # type: ignore[misc]
        ):
            with pytest.raises(AgentQueueError) as caught:
                call()
            assert caught.value.code == "invalid_job_id", repr(job_id)
            caught.value.message.encode("utf-8")  # printable as is


def _cli(env: dict[str, str], *args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "agentqueue.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        timeout=120,
    )


def _cli_in_process(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The real entry point (`run_cli`) in this process: a subprocess per case costs seconds."""
    saved = sys.argv
    sys.argv = ["agentqueue", *args]
    try:
        code = run_cli(cli)
    finally:
        sys.argv = saved
    return code, capfd.readouterr().err


def _one_error_line(code: int, err: str, what: object) -> None:
    assert code == 2, (what, err)
    assert "Traceback" not in err, (what, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and re.match(r"^error: [a-z_]+: ", lines[0]), (what, err)


def test_a_sample_of_fuzzed_jobs_through_the_cli_gives_one_line_errors(
    pipeline: Pipeline,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Given job files of the hostile kinds (and a file that is not UTF-8), `agentqueue submit`
    prints one `error: <code>: ...` line and exits 2, never a traceback; `status`/`cancel`
    with a surrogate id are refused the same way; nothing is recorded or sent."""
    files: list[Path] = []
    for index, case in enumerate(fuzz_cases(60, SEED)):
        if case.kind in ("circular_reference", "tuple_key", "non_string_key", "nul_in_id"):
            continue  # cannot be written as JSON text: the Python API test covers them
        if case.kind == "valid" or len(files) >= 18:
            continue
        path = tmp_path / f"case{index}.json"
        if isinstance(case.job, bytes):
            path.write_bytes(case.job)
        elif isinstance(case.job, str):
            path.write_text(case.job, encoding="utf-8", errors="surrogatepass")
        else:
            try:
                text = json.dumps(case.job, default=str, allow_nan=True)
            except (RecursionError, ValueError):  # too deep or too long an int for json.dumps
                text = '{"agent_type": "a", "metadata": {"deep": ' + "[" * 2000 + "]" * 2000 + "}}"
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        files.append(path)
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes('{"agent_type": "caf\xe9", "model": "m"}\n'.encode("latin-1"))

    # The installed command, twice, as a user runs it: a file that is not UTF-8, an id that is not.
    for args in (("submit", "--file", str(latin1)), ("status", b"abc\xff")):
        done = _cli(pipeline.env, *args)
        _one_error_line(done.returncode, done.stderr.decode("utf-8", "replace"), args)
    assert b"invalid_encoding" in _cli(pipeline.env, "submit", "-f", str(latin1)).stderr

    for name, value in pipeline.env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        calls = [("submit", "--file", str(p)) for p in files]
        calls += [
            ("status", "abc\udcff"),
            ("cancel", "\udced\udca0\udc80id"),
            ("status", "a" * 300),
        ]
        for args in calls:
            _one_error_line(*_cli_in_process(capfd, *args), args)
    finally:
        get_settings.cache_clear()

    with pipeline.queue.sessions() as session:
        assert list(session.scalars(select(JobRecord.id))) == []
    client = redis.Redis.from_url(redis_url)
    assert _messages(client) == 0
    client.close()


def test_submit_status_and_cancel_with_the_database_down_are_coded_errors(
    pipeline: Pipeline,
) -> None:
    """Given a PostgreSQL URL nobody answers, submit/status/cancel raise `database_unavailable`
    (never a raw SQLAlchemy error), naming the setting and not the URL."""
    dead = f"postgresql+psycopg://postgres:pw-not-shown@127.0.0.1:{free_port()}/nowhere"
    settings = pipeline.settings.model_copy(update={"database_url": dead})
    with AgentQueue(settings) as down:
        for call in (
            lambda: down.submit(simple_job(1)),
            lambda: down.status("some-id"),
            lambda: down.cancel("some-id"),
        ):
            with pytest.raises(AgentQueueError) as caught:
                call()
            assert caught.value.code == "database_unavailable"
            assert "AGENTQUEUE_DATABASE_URL" in caught.value.message
            assert "pw-not-shown" not in str(caught.value)
            assert caught.value.__suppress_context__
