"""The pooled HTTP connections to one provider endpoint, shared by every thread of a process."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

# httpcore's pool does work proportional to its connection count under one lock on every request
# and response; past ~100 connections one client becomes the bottleneck (measured: 64 threads at
# 200 ms reach 95% of C/latency through one client, 128 threads only 40%, but 91% through four
# clients of 32). Large pools are therefore split over clients of at most this many connections.
CONNECTIONS_PER_CLIENT = 32


@dataclass(frozen=True)
class PoolConfig:
    """Connection pool and timeout for one endpoint.

    httpx has no per-host cap, but a pool here serves exactly one endpoint (one host), so its size
    is `min(max_connections, max_connections_per_host)`. Every pooled connection may stay idle
    for `keepalive_s`, so bursts reuse warm connections instead of paying TCP/TLS set-up again.
    `timeout_s` bounds connecting, each read and each write; waiting for a free pooled connection
    is back-pressure, not failure, and is bounded by the job's time limit.
    """

    max_connections: int = 20
    max_connections_per_host: int = 10
    keepalive_s: float = 30.0
    timeout_s: float = 30.0

    @property
    def size(self) -> int:
        """The most TCP connections the endpoint's pool will ever hold open at once."""
        return min(self.max_connections, self.max_connections_per_host)

    def client_sizes(self) -> list[int]:
        """How the pool is split over httpx clients: near-equal parts of at most 32."""
        clients = math.ceil(self.size / CONNECTIONS_PER_CLIENT)
        base, extra = divmod(self.size, clients)
        return [base + 1] * extra + [base] * (clients - extra)

    def limits(self, size: int) -> httpx.Limits:
        # Keep-alive for every connection: a pool that closes idle ones reopens them next burst.
        return httpx.Limits(
            max_connections=size, max_keepalive_connections=size, keepalive_expiry=self.keepalive_s
        )

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout_s, pool=None)


class EndpointPool:
    """At most `config.size` keep-alive connections to one base URL, leased to threads.

    Usually one `httpx.Client`; a pool larger than `CONNECTIONS_PER_CLIENT` is split over several,
    and each request goes to the client with the most free connections, so a request waits only
    when the whole pool is busy.
    """

    def __init__(self, base_url: str, headers: Mapping[str, str], config: PoolConfig) -> None:
        self.config = config
        self._capacity = config.client_sizes()
        self._in_flight = [0] * len(self._capacity)
        self._lock = threading.Lock()
        self._clients = [
            httpx.Client(
                base_url=base_url,
                headers=dict(headers),
                limits=config.limits(size),
                timeout=config.timeout(),
            )
            for size in self._capacity
        ]

    @contextmanager
    def client(self) -> Iterator[httpx.Client]:
        """A client to send one request with; hold it only for that request."""
        with self._lock:
            index = max(
                range(len(self._clients)), key=lambda i: self._capacity[i] - self._in_flight[i]
            )
            self._in_flight[index] += 1
        try:
            yield self._clients[index]
        finally:
            with self._lock:
                self._in_flight[index] -= 1

    def close(self) -> None:
        """Close every pooled connection."""
        for client in self._clients:
            client.close()
