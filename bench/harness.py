"""Shared benchmark plumbing: scratch databases, preloaded queues, timed drains."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
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


def apply_env(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path[:0] = env["PYTHONPATH"].split(os.pathsep)
    from agentqueue.settings import get_settings

    get_settings.cache_clear()


def drain_seconds(
    client: redis.Redis, queue: str, expected: int, start_consuming: object, timeout: float = 300.0
) -> float:
    """Start consumption, then time until the queue and its unacked messages are gone."""
    assert client.llen(queue) == expected, (client.llen(queue), expected)
    started = time.perf_counter()
    start_consuming()  # type: ignore[operator]
    deadline = started + timeout
    while time.perf_counter() < deadline:
        if client.llen(queue) == 0 and client.hlen("unacked") == 0:
            return time.perf_counter() - started
        time.sleep(0.002)
    raise TimeoutError(f"{queue} not drained within {timeout} s")
