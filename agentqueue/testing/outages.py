"""Scripted outages of the LLM test server: a model answers 5xx for a while, then recovers."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Outage:
    """`model` (or every model, when None) answers `status` from `start` until `end`."""

    model: str | None
    start: float
    end: float
    status: int = 503

    @property
    def spec(self) -> str:
        return f"outage,status={self.status},model={self.model or '*'}"


class Outages:
    """The scheduled outages; thread-safe."""

    def __init__(self) -> None:
        self._outages: list[Outage] = []
        self._lock = threading.Lock()

    def add(
        self, model: str | None, seconds: float, *, status: int = 503, start_in_s: float = 0.0
    ) -> Outage:
        """`model` is down for `seconds`, starting `start_in_s` from now."""
        if seconds <= 0 or not 500 <= status <= 599:
            raise ValueError("an outage needs seconds > 0 and a 5xx status")
        start = time.monotonic() + start_in_s
        outage = Outage(model, start, start + seconds, status)
        with self._lock:
            self._outages.append(outage)
        return outage

    def clear(self) -> None:
        with self._lock:
            self._outages.clear()

    def active(self, model: str, now: float | None = None) -> Outage | None:
        moment = time.monotonic() if now is None else now
        with self._lock:
            return next(
                (
                    o
                    for o in self._outages
                    if o.model in (None, model) and o.start <= moment < o.end
                ),
                None,
            )

    def describe(self, now: float | None = None) -> list[dict[str, object]]:
        moment = time.monotonic() if now is None else now
        with self._lock:
            return [
                {"model": o.model, "status": o.status, "remaining_s": round(o.end - moment, 3)}
                for o in self._outages
                if o.end > moment
            ]
