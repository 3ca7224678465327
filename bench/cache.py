"""Cache hit latency per tier, each against the bare operation it wraps.

- L1: median `TieredCache.lookup_many` for an entry held in process memory.
- L2: the same call with a Redis-only policy, against a raw redis-py GET of the same value
  (a typical answer, stored uncompressed, and a large one above the compression threshold).
- L3: the same call with an SQL-only policy, against a raw SELECT by primary key on a pooled
  DBAPI connection of the same engine.

Redis 127.0.0.1:6379 database 15 (`--redis-db`; emptied), a temporary SQLite file, and
PostgreSQL too with `--postgres`. Calls alternate cache/raw so both see the same machine noise.

    python bench/cache.py [--output-bytes 1500] [--large-output-bytes 16000] [--iterations 3000]
                          [--postgres] [--redis-db 15]
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from harness import scratch_postgres

from agentqueue.cache import CacheEntry, CacheRequest, TieredCache
from agentqueue.cache.l2_redis import entry_key
from agentqueue.jobs import AgentJob
from agentqueue.persistence.engine import dispose_all, get_engine, get_sessionmaker
from agentqueue.persistence.migrate import upgrade
from agentqueue.settings import Settings, load_settings
from agentqueue.usage import TokenUsage

# Emptied by the run; `--redis-db` picks another database on a shared server.
REDIS_URL = "redis://127.0.0.1:6379/15"
GOALS = {"l1_median_us": 10.0, "l2_ratio": 1.3, "l3_ratio": 1.5}


def median_us(samples: list[int]) -> float:
    return statistics.median(samples) / 1000


def paired(
    first: Callable[[], object], second: Callable[[], object], iterations: int
) -> tuple[float, float]:
    """Median µs of each, measured alternately after a warm-up."""
    for _ in range(min(200, iterations)):
        first()
        second()
    a: list[int] = []
    b: list[int] = []
    clock = time.perf_counter_ns
    for _ in range(iterations):
        start = clock()
        first()
        middle = clock()
        second()
        end = clock()
        a.append(middle - start)
        b.append(end - middle)
    return median_us(a), median_us(b)


def settings_for(tiers: str) -> Settings:
    return load_settings(
        cache_redis_url=REDIS_URL,
        cache_agent_response_tiers=tiers,
        cache_l1_max_bytes=256 * 1024 * 1024,
    )


def sample_entry(output_bytes: int) -> CacheEntry:
    """Prose-like text (compresses about as well as a real answer, roughly 2-3x)."""
    rng = random.Random(7)
    vocabulary = [
        "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9)))
        for _ in range(800)
    ]
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < output_bytes:
        words.append(rng.choice(vocabulary) + ("." if rng.random() < 0.07 else ""))
    text = " ".join(words)[:output_bytes]
    return CacheEntry(
        output=text, model="gpt-4o-mini", provider="openai", usage=TokenUsage(812, 377)
    )


def request_for(settings: Settings, n: int) -> CacheRequest:
    job = AgentJob(
        agent_type="support",
        model="gpt-4o-mini",
        tenant="bench",
        messages=[{"role": "user", "content": f"Summarise ticket #{n} for the on-call engineer."}],
        params={"temperature": 0, "max_tokens": 512},
    )
    return CacheRequest.for_job(job, provider="openai", model="gpt-4o-mini", settings=settings)


@contextmanager
def cache_for(tiers: str, database_url: str) -> Iterator[tuple[TieredCache, CacheRequest]]:
    settings = settings_for(tiers)
    cache = TieredCache.from_settings(settings, get_sessionmaker(database_url))
    try:
        yield cache, request_for(settings, len(tiers))
    finally:
        cache.close()


def l2_pair(
    cache: TieredCache, request: CacheRequest, client: redis.Redis, iterations: int
) -> tuple[float, float]:
    raw_key = entry_key(request.key)
    return paired(lambda: cache.lookup_many([request]), lambda: client.get(raw_key), iterations)


def bench_database(
    label: str, database_url: str, entry: CacheEntry, large_entry: CacheEntry, iterations: int
) -> dict:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    figures: dict[str, float] = {}

    with cache_for("l1", database_url) as (cache, request):
        cache.store(request, entry)
        assert cache.lookup(request).tier == "l1"
        samples = []
        for _ in range(iterations * 3):
            start = time.perf_counter_ns()
            cache.lookup_many([request])
            samples.append(time.perf_counter_ns() - start)
        figures["l1_median_us"] = median_us(samples[iterations:])

    for name, value in (("l2", entry), ("l2_large", large_entry)):
        with cache_for("l2", database_url) as (cache, request):
            cache.store(request, value)
            assert cache.lookup(request).tier == "l2"
            figures[f"{name}_value_bytes"] = len(client.get(entry_key(request.key)) or b"")
            figures[f"{name}_hit_us"], figures[f"{name}_raw_get_us"] = l2_pair(
                cache, request, client, iterations
            )
        client.flushdb()

    with cache_for("l3", database_url) as (cache, request):
        cache.store(request, entry)
        assert cache.lookup(request).tier == "l3"
        engine = get_engine(database_url)
        marker = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        sql = f"SELECT * FROM cache_entries WHERE cache_key = {marker}"

        def raw_select() -> object:
            connection = engine.raw_connection()
            try:
                cursor = connection.cursor()
                cursor.execute(sql, (request.key,))
                row = cursor.fetchone()
                cursor.close()
                return row
            finally:
                connection.close()

        figures["l3_hit_us"], figures["l3_raw_select_us"] = paired(
            lambda: cache.lookup_many([request]), raw_select, iterations
        )
    client.flushdb()
    client.close()

    figures["l2_ratio"] = figures["l2_hit_us"] / figures["l2_raw_get_us"]
    figures["l2_large_ratio"] = figures["l2_large_hit_us"] / figures["l2_large_raw_get_us"]
    figures["l3_ratio"] = figures["l3_hit_us"] / figures["l3_raw_select_us"]
    report(label, figures)
    return figures


def report(label: str, f: dict[str, float]) -> None:
    def verdict(name: str) -> str:
        return "ok" if f[name] <= GOALS[name] else f"MISSES the goal of {GOALS[name]}"

    print(f"\n{label}")
    print(f"  L1 hit median  {f['l1_median_us']:8.2f} µs   {verdict('l1_median_us')}")
    print(
        f"  L2 hit median  {f['l2_hit_us']:8.2f} µs   raw GET {f['l2_raw_get_us']:.2f} µs"
        f" of the same {int(f['l2_value_bytes'])} B   ratio {f['l2_ratio']:.2f}x"
        f"   {verdict('l2_ratio')}"
    )
    print(
        f"  L2 large value {f['l2_large_hit_us']:8.2f} µs   raw GET"
        f" {f['l2_large_raw_get_us']:.2f} µs of the same {int(f['l2_large_value_bytes'])} B"
        f" (zlib)   ratio {f['l2_large_ratio']:.2f}x"
    )
    print(
        f"  L3 hit median  {f['l3_hit_us']:8.2f} µs   raw SELECT by key"
        f" {f['l3_raw_select_us']:.2f} µs   ratio {f['l3_ratio']:.2f}x   {verdict('l3_ratio')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-bytes", type=int, default=1500)
    parser.add_argument("--large-output-bytes", type=int, default=16_000)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--postgres", action="store_true", help="also run on a scratch database")
    parser.add_argument("--redis-db", type=int, default=15, help="Redis database (emptied)")
    args = parser.parse_args()
    global REDIS_URL
    REDIS_URL = f"redis://127.0.0.1:6379/{args.redis_db}"
    entry = sample_entry(args.output_bytes)
    large_entry = sample_entry(args.large_output_bytes)
    print(f"cache hit latency, {args.output_bytes}-byte output, {args.iterations} iterations")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'bench.db'}"
        upgrade(url)
        bench_database("SQLite (temporary file)", url, entry, large_entry, args.iterations)
        dispose_all()
    if args.postgres:
        with scratch_postgres() as url:
            upgrade(url)
            bench_database(
                "PostgreSQL (scratch database)", url, entry, large_entry, args.iterations
            )
    print(f"\n{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
