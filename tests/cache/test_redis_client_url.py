"""The cache's Redis is the broker's server, next logical database, unix sockets included."""

from __future__ import annotations

import pytest
import redis

from agentqueue.cache.redis_client import cache_redis_url
from agentqueue.settings import load_settings


@pytest.mark.parametrize(
    ("broker", "cache"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/1"),
        ("redis://127.0.0.1:6379/4", "redis://127.0.0.1:6379/5"),
        ("unix:///tmp/aq/redis.sock?db=0", "unix:///tmp/aq/redis.sock?db=1"),
    ],
)
def test_default_cache_url_is_the_next_database(broker: str, cache: str) -> None:
    url = cache_redis_url(load_settings(redis_url=broker))
    assert url == cache
    redis.ConnectionPool.from_url(url)  # redis-py accepts it
