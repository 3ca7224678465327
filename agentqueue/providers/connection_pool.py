"""The pooled HTTP connections to one provider endpoint, shared by every thread of a process."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import httpx


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

    def limits(self, size: int) -> httpx.Limits:
        # Keep-alive for every connection: a pool that closes idle ones reopens them next burst.
        return httpx.Limits(
            max_connections=size, max_keepalive_connections=size, keepalive_expiry=self.keepalive_s
        )

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout_s, pool=None)


class EndpointPool:
    """At most `config.size` keep-alive connections to one base URL, each leased to one thread.

    Every connection is its own single-connection `httpx.Client`, and a thread holds it for a
    whole request. httpcore's shared pool is not safe here: a thread finishing a response may
    judge an idle connection "expired" (idle, socket readable) while another thread it was just
    handed to has sent a request on it and the answer is arriving, and close it under that
    request (encode/httpcore#1110). The request then fails with EBADF after the provider served
    it, so a retry pays twice, and the pool opens a connection beyond its cap. A connection no
    other thread can reach cannot be closed under anyone. Idle connections are reused last-in
    first-out (the warmest first); one the server dropped while idle is reopened by its client
    on next use. A thread waits only when all `config.size` are leased.
    """

    def __init__(self, base_url: str, headers: Mapping[str, str], config: PoolConfig) -> None:
        self.config = config
        self._base_url = base_url
        self._headers = dict(headers)
        self._available = threading.Condition()
        self._idle: list[httpx.Client] = []
        self._opened = 0
        self._closed = False
        # One TLS context for every connection: building one loads the CA bundle (milliseconds).
        self._tls: ssl.SSLContext = httpx.create_ssl_context()

    @contextmanager
    def client(self) -> Iterator[httpx.Client]:
        """A client to send one request with; hold it only for that request."""
        client = self._lease()
        try:
            yield client
        finally:
            with self._available:
                if self._closed:
                    client.close()
                else:
                    self._idle.append(client)
                    self._available.notify()

    def _lease(self) -> httpx.Client:
        with self._available:
            while True:
                if self._closed:
                    raise RuntimeError("the provider connection pool is closed")
                if self._idle:
                    return self._idle.pop()
                if self._opened < self.config.size:
                    self._opened += 1
                    break
                self._available.wait()
        # Built outside the lock: other threads keep leasing while this one is made.
        return httpx.Client(
            base_url=self._base_url,
            headers=self._headers,
            limits=self.config.limits(1),
            timeout=self.config.timeout(),
            verify=self._tls,
        )

    def close(self) -> None:
        """Close every idle connection now, and each leased one when its request ends."""
        with self._available:
            self._closed = True
            idle, self._idle = self._idle, []
            self._available.notify_all()
        for client in idle:
            client.close()
