"""Watch this worker's resident memory: free what can be freed, and leave before it is killed.

Above the soft limit the guard collects garbage and asks caches to shrink; above the hard
limit it asks the worker for a warm shutdown (SIGTERM): no new jobs are taken, the jobs in
hand finish, unstarted prefetched messages go back to Redis, and the process exits for its
supervisor to restart it.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

log = logging.getLogger(__name__)

MIB = 1024 * 1024


def resident_bytes() -> int:
    return int(psutil.Process().memory_info().rss)


@dataclass
class MemoryGuard:
    """Checks every `interval_s`; `on_soft` callbacks get the fraction of memory to give back."""

    hard_limit_bytes: int
    soft_limit_bytes: int
    interval_s: float = 5.0
    read_rss: Callable[[], int] = resident_bytes
    on_soft: list[Callable[[float], object]] = field(default_factory=list)
    on_hard: Callable[[], None] = field(default=lambda: os.kill(os.getpid(), signal.SIGTERM))
    soft_events: int = 0
    hard_triggered: bool = False
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @classmethod
    def for_limit(
        cls, max_memory_mb: int, *, soft_fraction: float, interval_s: float
    ) -> MemoryGuard:
        hard = max_memory_mb * MIB
        return cls(
            hard_limit_bytes=hard,
            soft_limit_bytes=int(hard * soft_fraction),
            interval_s=interval_s,
        )

    def check(self) -> str:
        """One sample and the action it calls for: 'ok', 'soft' or 'hard'."""
        rss = self.read_rss()
        if rss >= self.hard_limit_bytes:
            if not self.hard_triggered:
                self.hard_triggered = True
                log.warning(
                    "memory hard limit: resident %d MiB >= %d MiB; finishing the jobs in "
                    "hand, then exiting for a restart",
                    rss // MIB,
                    self.hard_limit_bytes // MIB,
                )
                self.on_hard()
            return "hard"
        if rss >= self.soft_limit_bytes:
            self.soft_events += 1
            share = min(1.0, (rss - self.soft_limit_bytes) / max(1, self.soft_limit_bytes) + 0.25)
            gc.collect()
            for shrink in self.on_soft:
                try:
                    shrink(share)
                except Exception:  # a cache failing to shrink must not stop the guard
                    log.exception("memory guard: shrink callback failed")
            log.info(
                "memory soft limit: resident %d MiB >= %d MiB; collected garbage, "
                "shrank caches by %.0f%%",
                rss // MIB,
                self.soft_limit_bytes // MIB,
                share * 100,
            )
            return "soft"
        return "ok"

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="aq-memory-guard", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            if self.check() == "hard":
                return
