"""A local OpenAI- and Anthropic-compatible HTTP server: the stand-in for the paid API in tests.

In-process: `with LLMTestServer(latency_ms=200) as server: ... server.base_url ...`.
Subprocess: `python -m agentqueue.testing.llm_server --port 8400 --latency-ms 200`.

One thread per connection with HTTP/1.1 keep-alive, so hundreds of slow requests overlap instead
of queueing. It counts TCP connections accepted and requests served, records when each request
arrived (all also at `GET /_stats`), and injects faults by rule (`--fault`, `POST /_faults`, the
`x-test-fault` header); see `FaultRule`. It can serve a fixed list of models (`--models`,
`GET /v1/models`; others get 404), limit requests and tokens per minute per model (`--limit`,
`POST /_limits`; 429 with `x-ratelimit-*` headers, see `ServerRateLimits`) and script outages
(`--outage`, `POST /_outage`: a model answers 503 for a while). It also serves OpenAI's Files
and Batch API and Anthropic's Message Batches (`batch_store.py`; `POST /_batches` sets delays).
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agentqueue.testing.batch_routes import is_batch_path, route
from agentqueue.testing.batch_store import BatchStore
from agentqueue.testing.faults import FAULT_HEADER, FaultBook, FaultRule
from agentqueue.testing.latency import LatencyModel
from agentqueue.testing.llm_replies import ReplyMaker, check_anthropic_shape, text_of
from agentqueue.testing.server_counters import Arrival, ServerCounters
from agentqueue.testing.server_policy import Refusal, ServerPolicy

_IDLE_CONNECTION_TIMEOUT_S = 120


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # a burst of 128+ connects must not overflow the listen backlog

    def __init__(self, address: tuple[str, int], owner: LLMTestServer) -> None:
        self.owner = owner
        self.open_sockets: set[socket.socket] = set()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.owner.counters.lock:
            self.owner.counters.connections_accepted += 1
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.owner.counters.lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-reply (timeouts, shutdown) are expected here; stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes
    timeout = _IDLE_CONNECTION_TIMEOUT_S
    server: _HTTPServer
    _uncounted = False  # an API request arrived and is not yet counted as served or not

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _batch_route(self, method: str, raw: bytes = b"") -> bool:
        if not is_batch_path(self.path):
            return False
        if not self._authorised(anthropic="/messages/batches" in self.path):
            return True
        reply = route(self.server.owner.batches, method, self.path, self.headers, raw)
        if reply is not None:
            status, data, content_type = reply
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        return reply is not None

    def do_GET(self) -> None:
        if self._batch_route("GET"):
            return
        if self.path.rstrip("/") in ("/_stats", "/v1/_stats"):
            self._send_json(200, self.server.owner.stats())
        elif self.path.rstrip("/") == "/health":
            self._send_json(200, {"ok": True})
        elif self.path.split("?", 1)[0].rstrip("/") == "/v1/models":
            listing = self.server.owner.policy.models.listing()
            if listing is None:
                self._send_error_reply(404, "not_found_error", "this server lists no models")
            else:
                self._send_json(200, listing)
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        owner = self.server.owner
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        path = self.path.split("?", 1)[0].rstrip("/")
        if self._batch_route("POST", raw):
            return
        if path == "/_batches":  # {"completion_delay_s": 2, "expire_after_s": 1, ...}
            try:
                config = owner.batches.configure(**json.loads(raw))
            except (ValueError, TypeError) as exc:
                self._send_json(400, {"error": {"message": str(exc)}})
                return
            self._send_json(200, vars(config))
        elif path == "/_faults":
            try:
                rule = owner.add_fault(str(json.loads(raw)["spec"]))
            except (ValueError, KeyError, TypeError) as exc:
                self._send_json(400, {"error": {"message": str(exc)}})
                return
            self._send_json(200, {"spec": rule.spec})
        elif path in ("/_limits", "/_outage", "/_models"):
            try:
                owner.policy.configure(path, json.loads(raw))
            except (ValueError, KeyError, TypeError) as exc:
                self._send_json(400, {"error": {"message": str(exc)}})
                return
            self._send_json(200, {"ok": True})
        elif path == "/_reset":
            owner.reset()
            self._send_json(200, {"ok": True})
        elif path.endswith("/chat/completions"):
            self._serve_api(path, raw, anthropic=False)
        elif path.endswith("/messages"):
            self._serve_api(path, raw, anthropic=True)
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})

    def _serve_api(self, path: str, raw: bytes, *, anthropic: bool) -> None:
        owner = self.server.owner
        try:
            body = json.loads(raw)
            model, messages = body["model"], body["messages"]
            if not isinstance(model, str) or not isinstance(messages, list) or not messages:
                raise ValueError("model must be a string and messages a non-empty list")
            if not all(isinstance(m, dict) for m in messages):
                raise ValueError("each message must be an object")
            if anthropic:
                check_anthropic_shape(body, self.headers.get("anthropic-version"))
        except (ValueError, KeyError, TypeError) as exc:
            self._send_error_reply(400, "invalid_request_error", f"bad request: {exc}")
            return
        last_text = text_of(messages[-1].get("content"))
        try:
            fault = owner.faults.pick(model, last_text, self.headers.get(FAULT_HEADER))
        except ValueError as exc:
            self._send_error_reply(400, "invalid_request_error", str(exc))
            return
        refusal = None if fault is not None else owner.policy.refusal(model, body)
        label = fault.spec if fault else (refusal.label if refusal else None)
        owner.counters.arrived(Arrival(time.monotonic(), path, model, label, last_text))
        self._uncounted = True  # counted served as its reply is written (see `_send_json`)
        answered = False
        try:
            answered = self._answer(body, fault, refusal, anthropic=anthropic)
        finally:
            if self._uncounted:
                self._uncounted = False
                owner.counters.finished(answered)

    def _answer(
        self,
        body: dict[str, Any],
        fault: FaultRule | None,
        refusal: Refusal | None,
        *,
        anthropic: bool,
    ) -> bool:
        """Reply (or, for a disconnect fault, don't); True if a reply was sent."""
        owner = self.server.owner
        if not self._authorised(anthropic=anthropic):
            return True
        if refusal is not None and refusal.status:
            self._send_error_reply(refusal.status, refusal.kind, refusal.message, refusal.headers)
            return True
        if fault is not None:
            if fault.delay_s and owner.stopping.wait(fault.delay_s):
                return False
            if fault.disconnect:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return False
            if fault.status is not None:
                retry_after = fault.retry_after_header()
                headers = {"retry-after": retry_after} if retry_after else {}
                kind = "rate_limit_error" if fault.status == 429 else "server_error"
                self._send_error_reply(fault.status, kind, f"injected fault {fault.spec}", headers)
                return True
        if owner.stopping.wait(owner.latency.sample_s(owner.random)):
            return False
        reply = owner.replies.anthropic(body) if anthropic else owner.replies.openai(body)
        self._send_json(200, reply, refusal.headers if refusal else None)
        return True

    def _authorised(self, *, anthropic: bool) -> bool:
        expected = self.server.owner.api_key
        if expected is None:
            return True
        if anthropic:
            given = self.headers.get("x-api-key") or ""
        else:
            given = (self.headers.get("authorization") or "").removeprefix("Bearer ")
        if given == expected:
            return True
        # Echo the key like some real APIs do, so tests prove the client redacts it.
        self._send_error_reply(401, "authentication_error", f"Incorrect API key provided: {given}")
        return False

    def _send_error_reply(
        self, status: int, kind: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        self._send_json(
            status, {"type": "error", "error": {"type": kind, "message": message}}, headers
        )

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self._uncounted:
            # Served before the body goes out: a client that reads the reply and then asks
            # the counters must find it counted.
            self._uncounted = False
            self.server.owner.counters.finished(True)
        self.wfile.write(data)


class LLMTestServer:
    """The server, with its configuration, fault rules and counters; start/stop or use `with`."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        latency_jitter_ms: float = 0.0,
        latency_percentiles: tuple[tuple[float, float], ...] = (),
        faults: list[FaultRule | str] | None = None,
        api_key: str | None = None,
        cache_min_tokens: int = 1024,
        seed: int | None = 0,
        models: list[str] | None = None,
        limits: dict[str, tuple[int | None, int | None]] | None = None,
        limit_burst_s: float = 1.0,
    ) -> None:
        """`models`: the only models served (and listed); `limits`: model -> (RPM, TPM)."""
        self.latency = LatencyModel(latency_ms, latency_jitter_ms, latency_percentiles)
        self.faults = FaultBook()
        for rule in faults or []:
            self.faults.add(rule)
        self.api_key = api_key
        self.replies = ReplyMaker(cache_min_tokens)
        self.batches = BatchStore(self.replies)
        self.random = random.Random(seed)
        self.counters = ServerCounters()
        self.policy = ServerPolicy(models, limits, limit_burst_s)
        self.stopping = threading.Event()
        self._httpd = _HTTPServer((host, port), self)
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Root URL; the Anthropic base URL (the provider appends `/v1/messages`)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (the provider appends `/chat/completions`)."""
        return f"{self.url}/v1"

    @property
    def connections_accepted(self) -> int:
        return self.counters.connections_accepted

    @property
    def requests_served(self) -> int:
        return self.counters.requests_served

    @property
    def requests_received(self) -> int:
        return len(self.counters.arrivals)

    @property
    def max_in_flight(self) -> int:
        return self.counters.max_in_flight

    @property
    def arrivals(self) -> list[Arrival]:
        with self.counters.lock:
            return list(self.counters.arrivals)

    def add_fault(self, rule: FaultRule | str) -> FaultRule:
        return self.faults.add(rule)

    def add_outage(self, model: str | None, seconds: float, **options: Any) -> None:
        """`model` (None: all) answers 503 (or `status=`) for `seconds` from now."""
        self.policy.outages.add(model, seconds, **options)

    def set_limit(self, model: str, *, rpm: int | None = None, tpm: int | None = None) -> None:
        self.policy.limits.set(model, rpm=rpm, tpm=tpm)

    def reset(self) -> None:
        """Forget fault rules, outages and batches, zero the counters (limits and models stay)."""
        self.faults.clear()
        self.policy.outages.clear()
        self.batches.reset()
        c = self.counters
        with c.lock:
            c.started_at = time.monotonic()
            c.connections_accepted = c.requests_served = 0
            c.max_in_flight = c.in_flight
            c.arrivals = []

    def stats(self) -> dict[str, Any]:
        """Counters and arrival offsets (seconds since start or reset), as served at `/_stats`."""
        return {
            **self.counters.snapshot(),
            "faults": self.faults.describe(),
            **self.policy.describe(),
            **self.batches.stats(),
        }

    def start(self) -> LLMTestServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"llm-test-server:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, wake sleeping handlers and cut open keep-alive connections."""
        self.stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()
        with self.counters.lock:
            sockets = list(self._httpd.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> LLMTestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


if __name__ == "__main__":
    # The command line lives in server_cli (which imports this module): looked up by name so
    # the two modules do not import each other.
    import importlib

    importlib.import_module("agentqueue.testing.server_cli").main()
