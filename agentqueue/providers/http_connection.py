"""One keep-alive HTTP/1.1 connection to a provider endpoint, for one request at a time.

Built on the standard library's `http.client`: a provider call on it costs about a third of the
CPU that one through `httpx.Client` does (`bench/http_clients.py`), and a worker makes one per
job. Proxies set in the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`) are
used as httpx used them: an `https` endpoint through a `CONNECT` tunnel, an `http` one by
absolute URL, with the proxy URL's user and password as basic credentials. The proxy itself must
be an `http://` URL; an `https://` or SOCKS proxy is refused as unusable, never bypassed.

A failed exchange says whether the provider may have received the request (`maybe_sent`):
anything that fails before the request is fully written (connecting, the TLS handshake, the
tunnel, writing) cannot have been run; a failure while the reply is awaited or read (a timeout, a
dropped connection, a malformed reply) may come after the provider ran and billed it. A kept-alive
connection the server closed while it sat idle is noticed before it is used and opened afresh,
so it is never mistaken for a request that may have been sent.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import select
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import getproxies_environment, proxy_bypass

_USER_AGENT = "agentqueue"


class ExchangeFailed(Exception):
    """An exchange that failed in transit: `reason` (not yet redacted) and `maybe_sent`."""

    def __init__(self, reason: str, *, maybe_sent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.maybe_sent = maybe_sent


class UnusableUrl(ValueError):
    """The base URL (or the proxy the environment names for it) cannot be used at all."""


class UnusableHeader(ValueError):
    """A request header that cannot be sent; the message names it, never its value (which
    may be the API key)."""


@dataclass(frozen=True, slots=True)
class RawReply:
    """A reply as read off the wire: status, reason phrase, lower-cased headers, body."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON; `ValueError` if it is not JSON."""
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where requests go: the base URL's parts, and the proxy the environment names for it."""

    tls: bool
    host: str
    port: int
    prefix: str  # the base URL's path, without its trailing slash
    proxy: tuple[str, int, dict[str, str]] | None  # host, port, headers for the proxy

    @classmethod
    def parse(cls, base_url: str) -> Endpoint:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UnusableUrl(f"not an http:// or https:// URL with a host: {parts.scheme}://")
        tls = parts.scheme == "https"
        try:
            port = parts.port or (443 if tls else 80)
        except ValueError as error:
            raise UnusableUrl(f"the port is not a number ({error})") from None
        return cls(
            tls,
            parts.hostname,
            port,
            parts.path.rstrip("/"),
            _proxy_for(parts.scheme, parts.hostname),
        )

    @property
    def origin(self) -> str:
        default = 443 if self.tls else 80
        port = "" if self.port == default else f":{self.port}"
        return f"{'https' if self.tls else 'http'}://{self.host}{port}"


def _proxy_for(scheme: str, host: str) -> tuple[str, int, dict[str, str]] | None:
    proxies = getproxies_environment()
    url = proxies.get(scheme) or proxies.get("all")
    if not url or proxy_bypass(host):
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise UnusableUrl("the proxy set in the environment is not an http:// URL with a host")
    headers = {}
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["proxy-authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    return parts.hostname, parts.port or 80, headers


class EndpointConnection:
    """One kept-alive connection to `base_url`, opened on first use and again whenever the
    server closed it; `timeout_s` bounds connecting and each read and write, and a connection
    idle for longer than `keepalive_s` is opened afresh."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        timeout_s: float,
        keepalive_s: float,
        tls: ssl.SSLContext,
    ) -> None:
        self._endpoint = Endpoint.parse(base_url)
        self._headers = {"user-agent": _USER_AGENT, **{k.lower(): v for k, v in headers.items()}}
        for name, value in self._headers.items():
            _check_header(name, value)
        self._keepalive_s = keepalive_s
        self._last_used = 0.0
        self.is_closed = False
        endpoint = self._endpoint
        if endpoint.proxy is None:
            host, port = endpoint.host, endpoint.port
        else:
            host, port, _ = endpoint.proxy
        if endpoint.tls:
            self._http: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=timeout_s, context=tls
            )
        else:
            self._http = http.client.HTTPConnection(host, port, timeout=timeout_s)
        if endpoint.proxy is not None:
            if endpoint.tls:
                self._http.set_tunnel(endpoint.host, endpoint.port, headers=endpoint.proxy[2])
            else:
                self._headers.update(endpoint.proxy[2])

    def post(self, path: str, body: bytes) -> RawReply:
        return self._exchange("POST", path, body)

    def get(self, path: str) -> RawReply:
        return self._exchange("GET", path, None)

    def close(self) -> None:
        self.is_closed = True
        self._http.close()

    def _target(self, path: str) -> str:
        endpoint = self._endpoint
        target = f"{endpoint.prefix}/{path.lstrip('/')}"
        # Through a proxy, a plain-HTTP request names its whole URL.
        return endpoint.origin + target if endpoint.proxy and not endpoint.tls else target

    def _exchange(self, method: str, path: str, body: bytes | None) -> RawReply:
        self._drop_if_stale()
        connected = self._http.sock is not None
        try:
            self._http.request(method, self._target(path), body=body, headers=self._headers)
        except (OSError, http.client.HTTPException) as error:
            # Connecting, the handshake, the tunnel or writing failed: the request was not
            # (fully) written, so the provider cannot have run it.
            self._http.close()
            kind = "WriteError" if connected else "ConnectError"
            raise ExchangeFailed(_reason(kind, error), maybe_sent=False) from None
        try:
            response = self._http.getresponse()
            reply = RawReply(
                response.status,
                response.reason,
                {name.lower(): value for name, value in response.getheaders()},
                response.read(),
            )
        except (OSError, http.client.HTTPException) as error:
            self._http.close()
            kind = "ReadTimeout" if isinstance(error, TimeoutError) else "RemoteProtocolError"
            raise ExchangeFailed(_reason(kind, error), maybe_sent=True) from None
        self._last_used = time.monotonic()
        return reply

    def _drop_if_stale(self) -> None:
        """Close a kept-alive connection the server has closed (its socket reads as ready:
        end of file, or bytes nobody asked for) or that sat idle past `keepalive_s`."""
        sock = self._http.sock
        if sock is None:
            return
        if time.monotonic() - self._last_used > self._keepalive_s or _readable(sock):
            self._http.close()


def _readable(sock: socket.socket) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _reason(kind: str, error: BaseException) -> str:
    return f"{kind}: {type(error).__name__}{f' {error}' if str(error) else ''}"


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _check_header(name: str, value: str) -> None:
    """http.client refuses such a header with an error that quotes its value: refuse it first,
    naming only the header."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise UnusableHeader(f"the {name} header holds a character outside Latin-1") from None
    if _CONTROL.search(value) or _CONTROL.search(name) or not name:
        raise UnusableHeader(f"the {name!r} header holds a line break or another control character")
