"""What the LLM test server counts: TCP connections, requests, concurrency, arrival times."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Arrival:
    """One API request as it reached the server (`at` is `time.monotonic()`)."""

    at: float
    path: str
    model: str
    fault: str | None
    text: str = ""  # the last message's text, so tests can count calls per job


class ServerCounters:
    """Connections, requests and concurrency, updated by handler threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started_at = time.monotonic()
        self.connections_accepted = 0
        self.requests_served = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrivals: list[Arrival] = []

    def arrived(self, arrival: Arrival) -> None:
        with self.lock:
            self.arrivals.append(arrival)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def finished(self, answered: bool) -> None:
        with self.lock:
            self.in_flight -= 1
            self.requests_served += answered
