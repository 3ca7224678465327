"""A secret in every URL setting and the key shows up nowhere: logs, results, errors, SQL, Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import redis
from sqlalchemy import MetaData, create_engine, select

from agentqueue.budget.budget_limits import set_budget
from agentqueue.client import AgentQueue
from agentqueue.constants import TASK_BUDGET_ALERTS
from agentqueue.errors import AgentQueueError
from agentqueue.persistence.engine import get_sessionmaker
from agentqueue.testing.llm_server import LLMTestServer
from tests.support.hostile_messages import hostile_items
from tests.support.pipeline import Pipeline, running_pipeline, simple_job
from tests.support.services import free_port

SECRETS = {
    "redis": "S3CRET-redis-7c1f",
    "cache": "S3CRET-cache-91aa",
    "database": "S3CRET-db-4e2d",
    "key": "S3CRET-key-0b77d9",
    "openai_path": "S3CRET-gw-55e0",
    "anthropic": "S3CRET-anthropic-c3d4",
    "webhook": "S3CRET-hook-a9f2",
}


def _with_password(url: str, user: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    rest = rest.split("@", 1)[-1]
    return f"{scheme}://{user}:{password}@{rest}"


@pytest.fixture
def llm_server() -> Iterator[LLMTestServer]:
    with LLMTestServer(api_key=SECRETS["key"]) as server:
        yield server


@pytest.fixture
def secret_pipeline(
    redis_url: str, postgres_url: str, tmp_path: Path, llm_server: LLMTestServer
) -> Iterator[Pipeline]:
    db = int(redis_url.rsplit("/", 1)[1])
    env = {
        "redis_url": _with_password(redis_url, "default", SECRETS["redis"]),
        "cache_redis_url": _with_password(
            redis_url.rsplit("/", 1)[0] + f"/{db + 1}", "default", SECRETS["cache"]
        ),
        "provider": "openai",
        "openai_base_url": f"{llm_server.url}/{SECRETS['openai_path']}/v1",
        "openai_api_key": SECRETS["key"],
        "anthropic_base_url": f"http://127.0.0.1:{free_port()}/?token={SECRETS['anthropic']}",
        "budget_webhook_url": f"http://127.0.0.1:{free_port()}/hook?token={SECRETS['webhook']}",
        "provider_max_attempts": "2",
        "provider_backoff_base_s": "0.01",
        "provider_backoff_max_s": "0.02",
        "job_max_retries": "0",
    }
    database_url = _with_password(postgres_url, "postgres", SECRETS["database"])
    with running_pipeline(env.pop("redis_url"), database_url, tmp_path, **env) as pipeline:
        yield pipeline


def _redis_text(url: str) -> str:
    client = redis.Redis.from_url(url)
    parts: list[str] = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        parts.append(key.decode("utf-8", "replace"))
        if kind == "string":
            value: object = client.get(key)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "set":
            value = client.smembers(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = client.xrange(key)
        else:
            value = kind
        parts.append(repr(value))
    client.close()
    return "\n".join(parts)


def _database_text(url: str) -> str:
    engine = create_engine(url)
    metadata = MetaData()
    metadata.reflect(engine)
    parts: list[str] = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            parts += [repr(tuple(row)) for row in connection.execute(select(table))]
    engine.dispose()
    return "\n".join(parts)


def _error_text(call: object) -> str:
    try:
        call()  # type: ignore[operator]
    except AgentQueueError as error:
        return f"{error!s} {error!r} {error.message}"
    raise AssertionError("expected an agentqueue error")


def test_no_secret_anywhere_after_a_run_through_every_error_path(
    secret_pipeline: Pipeline, llm_server: LLMTestServer, redis_url: str, tmp_path: Path
) -> None:
    """Given secrets in the Redis, cache, database, provider and webhook URLs and in the key,
    when jobs succeed, hit the cache, fail at the provider (500s, disconnects), are refused by
    the budget, meet hostile messages, and clients meet a dead database and a dead Redis,
    then no secret is in any log file, result, error, SQL row or Redis key or value."""
    pipeline = secret_pipeline
    llm_server.add_fault("status=500,contains=FAIL")
    llm_server.add_fault("disconnect,contains=DROP")
    pipeline.start_worker(loglevel="INFO", concurrency=4)
    queue = pipeline.queue
    said: list[str] = []

    ok = [queue.submit(simple_job(i, params={"temperature": 0})) for i in range(3)]
    again = queue.submit(simple_job(0, params={"temperature": 0}, id="cache-hit"))
    failing = queue.submit(simple_job(1, messages=[{"role": "user", "content": "FAIL now"}]))
    dropped = queue.submit(simple_job(2, messages=[{"role": "user", "content": "DROP it"}]))
    results = queue.wait([h.id for h in [*ok, again, failing, dropped]], timeout=60)
    assert results[failing.id].status.value == "failed"
    assert results[dropped.id].status.value == "failed"

    # Budget exhausted: refusals, alerts, and a webhook to a dead port.
    set_budget(
        get_sessionmaker(pipeline.settings.resolved_database_url),
        "global",
        "daily",
        Decimal("0.000001"),
        now=datetime.now(UTC),
        timezone="UTC",
    )
    refused = queue.submit(simple_job(9)).get(timeout=30)
    queue.celery.send_task(TASK_BUDGET_ALERTS, queue="agentqueue.critical")
    client = redis.Redis.from_url(redis_url)
    for item in list(hostile_items().values())[:4]:
        client.lpush("agentqueue.normal", item)
    client.close()
    assert queue.submit(simple_job(10, priority="critical")).get(timeout=30)

    said += [r.model_dump_json() for r in [*results.values(), refused]]
    said.append(_error_text(lambda: queue.submit({"agent_type": "Bad"})))
    said.append(_error_text(lambda: queue.status("no-such-job")))
    dead_db = _with_password(
        f"postgresql+psycopg://127.0.0.1:{free_port()}/x", "postgres", SECRETS["database"]
    )
    dead_redis = f"redis://default:{SECRETS['redis']}@127.0.0.1:{free_port()}/0"
    with AgentQueue(pipeline.settings.model_copy(update={"database_url": dead_db})) as down:
        said.append(_error_text(lambda: down.submit(simple_job(11))))
        said.append(_error_text(lambda: down.status("abc")))
    with AgentQueue(pipeline.settings.model_copy(update={"redis_url": dead_redis})) as down:
        said.append(_error_text(lambda: down.submit(simple_job(12))))
    # A base URL with userinfo stops the command at start-up, naming the variable only.
    refused_start = subprocess.run(
        [sys.executable, "-m", "agentqueue.cli", "status", "abc"],
        env={
            **os.environ,
            **pipeline.env,
            "AGENTQUEUE_OPENAI_BASE_URL": f"http://user:{SECRETS['key']}@127.0.0.1/v1",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused_start.returncode == 2
    assert "AGENTQUEUE_OPENAI_BASE_URL" in refused_start.stderr
    said += [refused_start.stdout, refused_start.stderr]
    time.sleep(1)  # the alert task and the rejections log asynchronously
    for worker in pipeline.workers:
        worker.stop(timeout=20)

    logs = "\n".join(p.read_text(errors="replace") for p in tmp_path.glob("*.log"))
    assert "HTTP Request" not in logs  # httpx's per-request INFO line stays silent
    assert "rejected a malformed message" in logs  # the hostile-message path was hit
    base, db = redis_url.rsplit("/", 1)
    places = {
        "logs": logs,
        "results and errors": "\n".join(said),
        "sql": _database_text(pipeline.settings.resolved_database_url),
        "redis": _redis_text(redis_url),
        "cache redis": _redis_text(f"{base}/{int(db) + 1}"),
    }
    for place, text in places.items():
        for name, secret in SECRETS.items():
            assert secret not in text, f"{name} secret found in {place}"
    assert json.dumps(places)  # all of it was text we could read
