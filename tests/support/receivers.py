"""Real receivers for what agentqueue announces: a local webhook endpoint, Celery events."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

PROBE_EVENT = "agentqueue-test-probe"


@dataclass
class Webhook:
    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def webhook_receiver() -> Iterator[Webhook]:
    """A local HTTP endpoint that records the JSON bodies posted to it."""
    hook = Webhook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            hook.bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_port}/hook?token=secret"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def celery_events(celery_app: Any, event_type: str) -> Iterator[list[dict[str, Any]]]:
    """Every `event_type` event on the broker while the block runs, as a monitor sees them.

    Returns only once the receiver is subscribed (a probe event of its own came back), so no
    event sent inside the block can be missed."""
    events: list[dict[str, Any]] = []
    probed = threading.Event()
    receiver: Any = None
    connection = celery_app.connection_for_read()

    def listen() -> None:
        nonlocal receiver
        receiver = celery_app.events.Receiver(
            connection,
            handlers={event_type: events.append, PROBE_EVENT: lambda _event: probed.set()},
        )
        receiver.capture(limit=None, timeout=None, wakeup=False)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not probed.is_set():
        assert time.monotonic() < deadline, "the event receiver never subscribed"
        with celery_app.events.default_dispatcher() as dispatcher:
            dispatcher.send(PROBE_EVENT)
        probed.wait(0.2)
    try:
        yield events
    finally:
        if receiver is not None:
            receiver.should_stop = True
        thread.join(timeout=5)
        connection.release()
