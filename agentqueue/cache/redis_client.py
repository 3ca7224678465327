"""The cache's own Redis: `AGENTQUEUE_CACHE_REDIS_URL`, else the broker's server, next database."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from agentqueue.settings import Settings

HEALTH_CHECK_INTERVAL_S = 30


def cache_redis_url(settings: Settings) -> str:
    """Where L2, single-flight and cache statistics live.

    Without `cache_redis_url`, the broker's server with database `cache_redis_db`, or the
    broker's database + 1, so flushing or evicting the cache never touches queued jobs.
    """
    if settings.cache_redis_url:
        return settings.cache_redis_url
    parts = urlsplit(settings.redis_url)
    query = dict(parse_qsl(parts.query))
    if parts.scheme == "unix":
        broker_db = int(query.get("db", 0))
    else:
        path_db = parts.path.strip("/")
        broker_db = int(query.pop("db", None) or path_db or 0)
    db = settings.cache_redis_db if settings.cache_redis_db is not None else broker_db + 1
    if parts.scheme == "unix":
        query["db"] = str(db)
        # urlunsplit would drop the empty host and leave "unix:/path", which redis-py refuses.
        return f"unix://{parts.path}?{urlencode(query)}"
    return urlunsplit(parts._replace(path=f"/{db}", query=urlencode(query)))


def build_cache_redis_client(settings: Settings) -> redis.Redis:
    """A client with short timeouts and one quick retry: a dead cache must cost jobs little."""
    timeout = settings.cache_redis_timeout_s
    return redis.Redis.from_url(
        cache_redis_url(settings),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
        retry=Retry(NoBackoff(), 1),
    )


def namespaced_channel(client: redis.Redis, channel: str) -> str:
    """Pub/sub channels span a whole server; suffix the database so deployments sharing one
    server (on different databases) never act on each other's messages."""
    return f"{channel}:{client.get_connection_kwargs().get('db', 0)}"
