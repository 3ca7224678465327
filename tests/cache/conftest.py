"""Cache fixtures: a factory of `TieredCache`s on the test Redis database and a real database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agentqueue.cache import TieredCache
from agentqueue.persistence.engine import get_sessionmaker
from tests.cache.support import make_settings

CacheFactory = Callable[..., TieredCache]


@pytest.fixture
def make_cache(redis_url: str) -> Iterator[CacheFactory]:
    """`make_cache(database_url, **settings)`: a cache closed at teardown."""
    caches: list[TieredCache] = []

    def make(database_url: str, **overrides: Any) -> TieredCache:
        settings = make_settings(redis_url, **overrides)
        cache = TieredCache.from_settings(settings, get_sessionmaker(database_url))
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        cache.close()
