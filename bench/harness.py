"""Shared benchmark plumbing: scratch databases, preloaded queues, timed drains, LLM server."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx
import redis
from sqlalchemy import create_engine, text

if TYPE_CHECKING:
    from agentqueue.workers.process import WorkerProcess

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "agentqueue.normal"  # where the measured jobs are preloaded
IDLE_QUEUE = "agentqueue.critical"  # empty during a run; a worker idles on it until told
# Longer than kombu's BRPOP timeout (1 s): by then every process consumes the added queue.
CONSUMERS_SETTLE_S = 1.5
POSTGRES_ADMIN_URL = os.environ.get(
    "AGENTQUEUE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_SERVER = os.environ.get("AGENTQUEUE_TEST_REDIS_URL", "redis://127.0.0.1:6379")


@contextmanager
def scratch_postgres() -> Iterator[str]:
    name = f"aqbench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        from agentqueue.persistence.engine import dispose_all

        dispose_all()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def idle_worker(
    env: dict[str, str],
    app: str,
    concurrency: int,
    log: Path,
    *,
    pool: str | None = None,
    processes: Literal["default"] | None = None,
) -> WorkerProcess:
    """A bare Celery worker of `app` (threads pool unless `pool`), or with
    `processes="default"` the default `agentqueue worker` command (one process per CPU),
    started on `IDLE_QUEUE` only: it takes nothing until told to consume `QUEUE`."""
    from agentqueue.workers.process import WorkerProcess

    return WorkerProcess(
        env,
        name=app.split(".")[-1],
        app=app,
        concurrency=concurrency,
        pool=pool,
        queues=[IDLE_QUEUE],
        log_file=log,
        processes=processes,
    ).start()


def bench_env(redis_url: str, database_url: str, **extra: str) -> dict[str, str]:
    env = {
        "AGENTQUEUE_REDIS_URL": redis_url,
        "AGENTQUEUE_DATABASE_URL": database_url,
        "AGENTQUEUE_AUTO_MIGRATE": "false",
        "AGENTQUEUE_LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT)]),
    }
    env.update(extra)
    return env


def bench_jobs(count: int) -> list[dict[str, Any]]:
    """`count` single-message jobs of one `(agent_type, model)`, as P1 and the profiles send."""
    return [
        {
            "agent_type": "bench",
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"request {index}"}],
        }
        for index in range(count)
    ]


def apply_env(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path[:0] = env["PYTHONPATH"].split(os.pathsep)
    from agentqueue.settings import get_settings

    get_settings.cache_clear()


def drain_seconds(
    client: redis.Redis,
    queue: str,
    expected: int,
    start_consuming: object,
    timeout: float = 300.0,
    *,
    from_first_take: bool = True,
) -> float:
    """Start consumption, then time until the queue and its unacked messages are gone.

    An idle worker process only sees a queue added by `add_consumer` when its pending BRPOP
    (kombu's 1 s timeout) returns, so each process of a worker starts taking the preloaded
    messages at its own moment, up to a second apart: the first took all of P1 bulk's 20
    packed messages before the second looked, in one run of four here (17/3, 16/4 and 13/7 in
    the others), and the ratio followed the split. So the preloaded list is set aside first
    (`RENAME`), consumption is started, and after `CONSUMERS_SETTLE_S` (every process blocked
    on the empty queue) the list is put back in one step, which wakes them all at once, as a
    burst of messages would wake workers that were already consuming.

    With `from_first_take` the clock starts when the first message leaves the queue. Without
    it, the clock starts when the messages are put back.
    """
    assert client.llen(queue) == expected, (client.llen(queue), expected)
    staged = f"{queue}.staged"
    client.rename(queue, staged)
    start_consuming()  # type: ignore[operator]
    time.sleep(CONSUMERS_SETTLE_S)
    assert client.llen(queue) == 0, "a consumer found messages while they were set aside"
    started = time.perf_counter()
    client.rename(staged, queue)
    deadline = started + timeout
    while from_first_take and time.perf_counter() < deadline:
        if client.llen(queue) < expected:
            started = time.perf_counter()
            break
        time.sleep(0.001)
    while time.perf_counter() < deadline:
        if client.llen(queue) == 0 and client.hlen("unacked") == 0:
            return time.perf_counter() - started
        time.sleep(0.002)
    raise TimeoutError(f"{queue} not drained within {timeout} s")


class LLMServerProcess:
    """`python -m agentqueue.testing.llm_server` in its own process, so its CPU is not ours.

    The server prints its URL as its first line; `/_stats` and `/_reset` read and zero its
    counters between runs.
    """

    def __init__(self, latency_ms: float, start_timeout_s: float = 30.0) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentqueue.testing.llm_server",
                "--port",
                "0",
                "--latency-ms",
                str(latency_ms),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], start_timeout_s)
        line = self.process.stdout.readline() if ready else ""
        if "http://" not in line:
            self.stop()
            raise RuntimeError(f"LLM test server did not print its URL (got {line!r})")
        self.url = line.strip().rsplit(" ", 1)[-1]
        # One kept-alive connection for /_stats and /_reset, so they add none to the count.
        self._control = httpx.Client(
            base_url=self.url, timeout=10, limits=httpx.Limits(keepalive_expiry=None)
        )
        self._control.get("/health").raise_for_status()

    @property
    def base_url(self) -> str:
        """What AGENTQUEUE_OPENAI_BASE_URL must be."""
        return f"{self.url}/v1"

    def stats(self) -> dict[str, Any]:
        return dict(self._control.get("/_stats").json())

    def reset(self) -> None:
        """Zero the counters; connections already open (ours included) are not counted."""
        self._control.post("/_reset").raise_for_status()

    def stop(self) -> None:
        if hasattr(self, "_control"):
            self._control.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
