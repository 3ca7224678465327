"""Reach the real Redis and PostgreSQL the suite runs against; skip (or fail under CI) if absent."""

from __future__ import annotations

import os
import uuid

import pytest
import redis

REDIS_URL = os.environ.get("AGENTQUEUE_TEST_REDIS_URL", "redis://127.0.0.1:6379")
POSTGRES_ADMIN_URL = os.environ.get(
    "AGENTQUEUE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def require(service: str, reason: str) -> None:
    """Skip for a missing service, except under CI where a missing service is a failure."""
    message = f"{service} is not reachable: {reason}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def redis_available(url: str = REDIS_URL) -> bool:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        return True
    except redis.RedisError:
        return False


def create_postgres_database(prefix: str = "aqtest", *, template: str | None = None) -> str:
    """Create a fresh, uniquely named database and return its URL; `template` (a database
    URL nobody is connected to) makes it a copy of that one."""
    from sqlalchemy import create_engine, text

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    copy_of = f' TEMPLATE "{template.rsplit("/", 1)[1]}"' if template else ""
    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"{copy_of}'))
    finally:
        engine.dispose()
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_postgres_database(url: str) -> None:
    from sqlalchemy import create_engine, text

    name = url.rsplit("/", 1)[1]
    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
