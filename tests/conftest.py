"""Fixtures for real services: a Redis database and migrated SQLite / PostgreSQL databases."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from agentqueue.persistence.engine import dispose_all
from agentqueue.persistence.migrate import upgrade
from tests.support import services
from tests.support.pipeline import Pipeline, running_pipeline

# Keep whatever the developer has configured out of the tests.
for _name in list(os.environ):
    if _name.startswith("AGENTQUEUE_") and not _name.startswith("AGENTQUEUE_TEST_"):
        del os.environ[_name]


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    if not services.redis_available():
        services.require("Redis", services.REDIS_URL)
    return services.REDIS_URL


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """A Redis logical database of its own for one test, emptied before and after, together
    with the next one (where the result cache lives by default)."""
    db = int(os.environ.get("AGENTQUEUE_TEST_REDIS_DB", "9"))
    url = f"{redis_server_url}/{db}"
    clients = [redis.Redis.from_url(f"{redis_server_url}/{n}") for n in (db, db + 1)]
    for client in clients:
        client.flushdb()
    yield url
    for client in clients:
        client.flushdb()
        client.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'agentqueue.db'}"
    upgrade(url)
    yield url
    dispose_all()


@pytest.fixture(scope="session")
def postgres_server() -> str:
    try:
        url = services.create_postgres_database()
    except Exception as exc:  # any driver error means the server is not usable
        services.require("PostgreSQL", str(exc).splitlines()[0])
        raise
    services.drop_postgres_database(url)
    return services.POSTGRES_ADMIN_URL


@pytest.fixture(scope="session")
def postgres_template(postgres_server: str) -> Iterator[str]:
    """A database migrated once per session, which each test's database copies (a copy is
    cheaper than running the migrations again)."""
    url = services.create_postgres_database("aqtemplate")
    upgrade(url)
    dispose_all()  # a template must have no connections when it is copied
    yield url
    services.drop_postgres_database(url)


@pytest.fixture
def postgres_url(postgres_template: str) -> Iterator[str]:
    url = services.create_postgres_database(template=postgres_template)
    yield url
    dispose_all()
    services.drop_postgres_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs on both backends."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def pipeline(redis_url: str, postgres_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    """agentqueue on real Redis and PostgreSQL; start workers with `pipeline.start_worker()`."""
    with running_pipeline(redis_url, postgres_url, tmp_path) as running:
        yield running


@pytest.fixture
def sqlite_pipeline(redis_url: str, sqlite_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    with running_pipeline(redis_url, sqlite_url, tmp_path) as running:
        yield running
