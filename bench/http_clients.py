"""Provider calls in a thread pool against one event loop: CPU per request and requests/s.

Issue 13 leaves one choice to measurement: one event loop per worker process with
`httpx.AsyncClient` for provider calls, if it beats the per-call thread pool. This runs, in one
process against the local OpenAI-compatible test server (its own process, `--latency-ms`), with
`--concurrency` requests in flight and `--requests` requests per run:

- `threads`: a `ThreadPoolExecutor` of C threads sharing one `httpx.Client` (the worker's shape);
- `http.client`: the same threads, each on its own connection of the standard library's
  `http.client` (what our transport is built on);
- `provider`: the same threads calling agentqueue's own `OpenAICompatibleProvider` (what a
  worker's call costs with our transport, on `http.client` since the ninth session: retries,
  redaction, the reply's checks);
- `event-loop`: C coroutines on one asyncio loop sharing one `httpx.AsyncClient`.

Each prints this process's CPU time (user and system) per request and the requests per second
against the ceiling C / latency, after one warm round of C requests; `--rounds` alternates them.

    .venv/bin/python bench/http_clients.py [--concurrency 64] [--requests 1500]
        [--latency-ms 200] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import resource
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx
from harness import LLMServerProcess

from agentqueue.providers.base import ProviderRequest
from agentqueue.providers.openai_compat import OpenAICompatibleProvider
from agentqueue.settings import Settings

MODEL = "gpt-4o-mini"
MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "hello"}]
BODY = {"model": MODEL, "messages": MESSAGES, "max_tokens": 16}
HEADERS = {"authorization": "Bearer sk-bench-not-a-real-key"}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def limits(concurrency: int) -> httpx.Limits:
    return httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)


def timed_pool(
    call: Callable[[int], object], concurrency: int, requests: int
) -> tuple[float, float]:
    """CPU seconds and wall seconds of `requests` calls on C threads, after a warm round."""
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(call, range(concurrency)))
        cpu, began = cpu_seconds(), time.perf_counter()
        list(pool.map(call, range(requests)))
        return cpu_seconds() - cpu, time.perf_counter() - began


def threads(url: str, concurrency: int, requests: int) -> tuple[float, float]:
    with httpx.Client(base_url=url, limits=limits(concurrency), headers=HEADERS) as client:

        def one(_: int) -> object:
            response = client.post("/chat/completions", json=BODY)
            response.raise_for_status()
            return response.json()

        return timed_pool(one, concurrency, requests)


def stdlib(url: str, concurrency: int, requests: int) -> tuple[float, float]:
    """The same threads, each on its own `http.client` connection (what our transport uses)."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    local = threading.local()
    headers = {**HEADERS, "content-type": "application/json"}

    def one(_: int) -> object:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = http.client.HTTPConnection(
                parts.hostname, parts.port, timeout=30
            )
        connection.request(
            "POST", f"{parts.path}/chat/completions", body=json.dumps(BODY), headers=headers
        )
        response = connection.getresponse()
        assert response.status == 200
        return json.loads(response.read())

    return timed_pool(one, concurrency, requests)


def provider(url: str, concurrency: int, requests: int) -> tuple[float, float]:
    settings = Settings(
        provider="openai",
        openai_base_url=url,
        openai_api_key="sk-bench-not-a-real-key",
        http_max_connections=concurrency,
        http_max_connections_per_host=concurrency,
    )
    calls = OpenAICompatibleProvider.from_settings(settings)
    request = ProviderRequest(model=MODEL, messages=MESSAGES, max_tokens=16)
    try:
        return timed_pool(lambda _: calls.complete(request), concurrency, requests)
    finally:
        calls.close()


async def _event_loop(url: str, concurrency: int, requests: int) -> tuple[float, float]:
    async with httpx.AsyncClient(
        base_url=url, limits=limits(concurrency), headers=HEADERS
    ) as client:

        async def calls(count: list[int]) -> None:
            while count[0] > 0:
                count[0] -= 1
                response = await client.post("/chat/completions", json=BODY)
                response.raise_for_status()
                response.json()

        await asyncio.gather(*(calls([1]) for _ in range(concurrency)))
        left = [requests]
        cpu, began = cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(calls(left) for _ in range(concurrency)))
        return cpu_seconds() - cpu, time.perf_counter() - began


def event_loop(url: str, concurrency: int, requests: int) -> tuple[float, float]:
    return asyncio.run(_event_loop(url, concurrency, requests))


MODES: dict[str, Callable[[str, int, int], tuple[float, float]]] = {
    "threads": threads,
    "http.client": stdlib,
    "provider": provider,
    "event-loop": event_loop,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    ceiling = args.concurrency / (args.latency_ms / 1000)
    print(
        f"{args.requests} requests, {args.concurrency} in flight, test server at "
        f"{args.latency_ms:.0f} ms (ceiling {ceiling:.0f} requests/s)"
    )
    server = LLMServerProcess(args.latency_ms)
    results: dict[str, list[Any]] = {mode: [] for mode in MODES}
    try:
        for round_number in range(1, args.rounds + 1):
            for mode, run in MODES.items():
                cpu, wall = run(server.base_url, args.concurrency, args.requests)
                results[mode].append((cpu, wall))
                print(
                    f"  round {round_number} {mode:11s}: {1000 * cpu / args.requests:6.2f} ms CPU "
                    f"per request, {args.requests / wall:5.0f} requests/s"
                )
    finally:
        server.stop()
    base = min(cpu for cpu, _ in results["threads"])
    for mode, runs in results.items():
        cpu = min(c for c, _ in runs)
        rate = max(args.requests / w for _, w in runs)
        print(
            f"{mode:11s}: {1000 * cpu / args.requests:6.2f} ms CPU per request "
            f"({cpu / base:.2f}x threads), {rate:.0f} requests/s "
            f"({100 * rate / ceiling:.0f}% of ceiling)"
        )


if __name__ == "__main__":
    main()
