"""The provider connection over real sockets: a kept-alive connection the server closed while
idle, proxies named by the environment, and base URLs that cannot be used."""

from __future__ import annotations

import http.client
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from agentqueue.providers.base import ProviderError
from agentqueue.providers.connection_pool import PoolConfig
from agentqueue.providers.http_transport import HttpTransport
from agentqueue.providers.openai_compat import OpenAICompatibleProvider
from agentqueue.testing import llm_server as llm_server_module
from agentqueue.testing.llm_server import LLMTestServer
from tests.providers.conftest import FAST_BACKOFF, chat

BODY = {"model": "gpt-test", "messages": [{"role": "user", "content": "hello"}]}
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def transport(base_url: str) -> HttpTransport:
    return HttpTransport(provider="openai", base_url=base_url, headers={}, backoff=FAST_BACKOFF)


def failed_post(base_url: str) -> ProviderError:
    """The error of one JSON POST to `base_url` that must fail."""
    http = transport(base_url)
    try:
        with pytest.raises(ProviderError) as caught:
            http.post_json("/chat/completions", BODY)
    finally:
        http.close()
    return caught.value


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_a_connection_the_server_closed_while_idle_is_opened_afresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given a server that closes a kept-alive connection after 0.2 s idle, when a second call
    comes after 0.6 s, then it goes on a new connection at its first attempt and is not
    counted as a request the provider may have received (the server got exactly two)."""
    monkeypatch.setattr(llm_server_module._Handler, "timeout", 0.2)
    with LLMTestServer() as server:
        http = transport(server.base_url)
        try:
            first = http.post_json("/chat/completions", BODY)
            time.sleep(0.6)
            second = http.post_json("/chat/completions", BODY)
        finally:
            http.close()
        stats = server.stats()
    assert (first.attempts, second.attempts) == (1, 1)
    assert second.maybe_repeated == 0
    assert (stats["requests_received"], stats["requests_served"]) == (2, 2)
    assert stats["connections_accepted"] == 2


@dataclass
class Seen:
    request_lines: list[str] = field(default_factory=list)
    proxy_authorizations: list[str | None] = field(default_factory=list)


class ForwardingProxy(socketserver.ThreadingTCPServer):
    """A plain HTTP proxy: relays absolute-form requests to their origin; refuses CONNECT.
    It records each request line and its Proxy-Authorization header."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.seen = Seen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(socketserver.StreamRequestHandler):
    server: ForwardingProxy

    def handle(self) -> None:
        while True:
            line = self.rfile.readline().decode().strip()
            if not line:
                return
            headers = {}
            while (header := self.rfile.readline().decode().strip()) != "":
                name, _, value = header.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.server.seen.request_lines.append(line)
            self.server.seen.proxy_authorizations.append(headers.get("proxy-authorization"))
            method, target, _ = line.split(" ", 2)
            if method == "CONNECT":
                self.wfile.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
                return
            body = self.rfile.read(int(headers.get("content-length", "0")))
            origin = http.client.HTTPConnection(target.split("/")[2], timeout=10)
            path = "/" + target.split("/", 3)[3]
            headers.pop("proxy-authorization", None)
            origin.request(method, path, body=body, headers=headers)
            reply = origin.getresponse()
            data = reply.read()
            origin.close()
            self.wfile.write(f"HTTP/1.1 {reply.status} {reply.reason}\r\n".encode())
            self.wfile.write(
                f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n".encode()
            )
            self.wfile.write(data)


@pytest.fixture
def proxy() -> Iterator[ForwardingProxy]:
    server = ForwardingProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_an_http_proxy_from_the_environment_carries_the_calls(
    monkeypatch: pytest.MonkeyPatch, proxy: ForwardingProxy, llm_server: LLMTestServer
) -> None:
    """Given HTTP_PROXY naming a proxy with a user and password, when two calls are made, then
    both go through it by absolute URL with the credentials as basic proxy authorization, and
    the server answers both."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://ops:s%40cret@"))
    http = transport(llm_server.base_url)
    try:
        replies = [http.post_json("/chat/completions", BODY) for _ in range(2)]
    finally:
        http.close()
    assert [reply.attempts for reply in replies] == [1, 1]
    origin = llm_server.base_url.removesuffix("/v1")
    assert proxy.seen.request_lines == [f"POST {origin}/v1/chat/completions HTTP/1.1"] * 2
    # base64 of "ops:s@cret"
    assert proxy.seen.proxy_authorizations == ["Basic b3BzOnNAY3JldA=="] * 2
    assert llm_server.requests_served == 2


def test_no_proxy_sends_the_calls_straight_to_the_server(
    monkeypatch: pytest.MonkeyPatch, proxy: ForwardingProxy, llm_server: LLMTestServer
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    http = transport(llm_server.base_url)
    try:
        assert http.post_json("/chat/completions", BODY).attempts == 1
    finally:
        http.close()
    assert proxy.seen.request_lines == []
    assert llm_server.requests_served == 1


def test_an_https_endpoint_asks_the_proxy_for_a_tunnel(
    monkeypatch: pytest.MonkeyPatch, proxy: ForwardingProxy
) -> None:
    """Given HTTPS_PROXY, when an https endpoint is called, then the proxy is asked to
    CONNECT to the endpoint's host and port with the credentials; a refused tunnel is a
    failure the provider cannot have received (nothing may have been billed)."""
    monkeypatch.setenv("HTTPS_PROXY", proxy.url.replace("http://", "http://ops:pw@"))
    error = failed_post("https://api.example.test:8443/v1")
    assert proxy.seen.request_lines == ["CONNECT api.example.test:8443 HTTP/1.0"] * 3
    assert proxy.seen.proxy_authorizations == ["Basic b3BzOnB3"] * 3
    assert error.code == "provider_error"
    assert error.maybe_sent == 0


@pytest.mark.parametrize(
    "base_url", ["ftp://files.example.test/v1", "http:///v1", "http://host:port/v1"]
)
def test_an_unusable_base_url_fails_at_once_and_frees_its_connection_slot(base_url: str) -> None:
    """Given a base URL that cannot be used, when calls are made, then each fails at once with
    `provider_bad_config` (not retried), as often as it is called: the pool slot the failed
    connection took is given back, so a one-connection pool never blocks."""
    http = HttpTransport(
        provider="openai",
        base_url=base_url,
        headers={},
        backoff=FAST_BACKOFF,
        pool=PoolConfig(max_connections=1, max_connections_per_host=1),
    )
    try:
        for _ in range(3):
            with pytest.raises(ProviderError) as caught:
                http.post_json("/chat/completions", BODY)
            assert caught.value.code == "provider_bad_config"
    finally:
        http.close()


@pytest.mark.parametrize("key", ["sk-secret-4711\r\n", "sk-secret-4711\n", "sk-sécret-4711ключ"])
def test_a_key_that_cannot_go_in_a_header_fails_clearly_and_is_never_quoted(
    key: str, llm_server: LLMTestServer
) -> None:
    """Given an API key with a line break (copied with the key) or characters a header cannot
    carry, when a call is made, then it fails at once with `provider_bad_config` naming the
    setting, the key appears nowhere in the error, and nothing reached the server."""
    provider = OpenAICompatibleProvider(
        base_url=llm_server.base_url, api_key=key, backoff=FAST_BACKOFF
    )
    try:
        with pytest.raises(ProviderError) as caught:
            provider.complete(chat())
    finally:
        provider.close()
    assert caught.value.code == "provider_bad_config"
    assert "AGENTQUEUE_OPENAI_API_KEY" in caught.value.message
    assert "4711" not in str(caught.value) and "secret" not in str(caught.value)
    assert llm_server.requests_received == 0


def test_a_socks_proxy_is_refused_not_bypassed(
    monkeypatch: pytest.MonkeyPatch, llm_server: LLMTestServer
) -> None:
    """Given ALL_PROXY naming a SOCKS proxy (which this transport cannot speak), when a call
    is made, then it fails as `provider_bad_config` naming the proxy, and nothing went to the
    server around the proxy."""
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    error = failed_post(llm_server.base_url)
    assert error.code == "provider_bad_config"
    assert "proxy" in error.message
    assert llm_server.requests_received == 0
