"""The pooled HTTP connections to one provider endpoint, shared by every thread of a process."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from agentqueue.providers.http_connection import EndpointConnection


@dataclass(frozen=True)
class PoolConfig:
    """Connection pool and timeout for one endpoint.

    A pool here serves exactly one endpoint (one host), so its size is
    `min(max_connections, max_connections_per_host)`. Every pooled connection may stay idle
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


class EndpointPool:
    """At most `config.size` keep-alive connections to one base URL, each leased to one thread.

    A thread holds its connection for a whole request, so no connection can be closed under
    another thread's request (as httpcore's shared pool could: encode/httpcore#1110, a request
    failing with EBADF after the provider served it, then a paid retry and a connection beyond
    the cap). Idle connections are reused last-in first-out (the warmest first); one the server
    closed while idle is opened afresh on next use. A thread waits only when all `config.size`
    are leased.
    """

    def __init__(self, base_url: str, headers: Mapping[str, str], config: PoolConfig) -> None:
        self.config = config
        self._base_url = base_url
        self._headers = dict(headers)
        self._available = threading.Condition()
        self._idle: list[EndpointConnection] = []
        self._opened = 0
        self._closed = False
        # One TLS context for every connection: building one loads the CA bundle (milliseconds).
        # (httpx's context: its CA bundle, and SSL_CERT_FILE / SSL_CERT_DIR when set.)
        self._tls: ssl.SSLContext = httpx.create_ssl_context()

    @contextmanager
    def connection(self) -> Iterator[EndpointConnection]:
        """A connection to send one request on; hold it only for that request."""
        connection = self._lease()
        try:
            yield connection
        finally:
            with self._available:
                if self._closed:
                    connection.close()
                else:
                    self._idle.append(connection)
                    self._available.notify()

    def _lease(self) -> EndpointConnection:
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
        try:
            return EndpointConnection(
                self._base_url,
                self._headers,
                timeout_s=self.config.timeout_s,
                keepalive_s=self.config.keepalive_s,
                tls=self._tls,
            )
        except BaseException:
            with self._available:  # the slot taken above is free again
                self._opened -= 1
                self._available.notify()
            raise

    def close(self) -> None:
        """Close every idle connection now, and each leased one when its request ends."""
        with self._available:
            self._closed = True
            idle, self._idle = self._idle, []
            self._available.notify_all()
        for connection in idle:
            connection.close()
