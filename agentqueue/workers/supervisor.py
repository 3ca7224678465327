"""`agentqueue worker`'s parent: runs N Celery worker processes and keeps them running.

A child that exits without being asked to (a crash, a SIGKILL, kombu's "Unrecoverable error")
is started again after a backoff (1 s, doubling, capped), with one clear log line each time.
A child that keeps dying (more than `max_restarts` within `window_s`) makes the supervisor
stop the others and exit non-zero, so a container runtime or systemd sees the failure. One
SIGTERM (or SIGINT) asks every child for a warm shutdown; a second one forces a cold one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

log = logging.getLogger("agentqueue.supervisor")

POLL_S = 0.2
EXIT_GAVE_UP = 3


def default_processes() -> int:
    """`agentqueue worker`'s default number of processes: one per CPU this process may use."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class _Slot:
    index: int
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: deque[float] = field(default_factory=deque)  # monotonic times, within window
    restart_at: float | None = None
    backoff_s: float = 0.0


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


class Supervisor:
    """Starts one process per command and restarts the ones that die."""

    def __init__(
        self,
        commands: Sequence[Sequence[str]],
        *,
        env: Mapping[str, str] | None = None,
        max_restarts: int = 5,
        window_s: float = 60.0,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 30.0,
        spawn: Callable[[list[str], Mapping[str, str] | None], subprocess.Popen[bytes]]
        | None = None,
    ) -> None:
        self.slots = [_Slot(i + 1, list(argv)) for i, argv in enumerate(commands)]
        self.env = env
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._spawn = spawn or (lambda argv, env: subprocess.Popen(argv, env=env))
        self._stop_requests = 0

    # Signals -------------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stop_requests += 1
        cold = self._stop_requests > 1
        log.warning(
            "%s received: %s shutdown of %d worker process(es)",
            signal.Signals(signum).name,
            "cold" if cold else "warm",
            len(self.slots),
        )
        self._signal_all(signal.SIGQUIT if cold else signal.SIGTERM)

    def _signal_all(self, signum: int) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(signum)

    # Running -------------------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until asked to stop (0) or a process keeps dying (non-zero)."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            return self._supervise()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _supervise(self) -> int:
        for slot in self.slots:
            self._start(slot)
        while not self._stop_requests:
            time.sleep(POLL_S)
            for slot in self.slots:
                if self._stop_requests:
                    break
                if not self._check(slot):
                    self._signal_all(signal.SIGTERM)
                    self._wait_all()
                    return EXIT_GAVE_UP
        self._wait_all()
        return 0

    def _start(self, slot: _Slot) -> None:
        slot.process = self._spawn(slot.argv, self.env)
        slot.restart_at = None
        log.info("worker process %d started (pid %d)", slot.index, slot.process.pid)

    def _check(self, slot: _Slot) -> bool:
        """Restart a dead process when its backoff is over; False to give up."""
        now = time.monotonic()
        if slot.restart_at is not None:
            if now >= slot.restart_at:
                self._start(slot)
            return True
        assert slot.process is not None
        code = slot.process.poll()
        if code is None:
            return True
        while slot.restarts and now - slot.restarts[0] > self.window_s:
            slot.restarts.popleft()
        if len(slot.restarts) >= self.max_restarts:
            log.error(
                "worker process %d (pid %d) exited unexpectedly with %s; it died %d times "
                "within %.0f s, giving up (agentqueue worker exits with status %d)",
                slot.index,
                slot.process.pid,
                describe_exit(code),
                len(slot.restarts) + 1,
                self.window_s,
                EXIT_GAVE_UP,
            )
            return False
        # A process that ran quietly for a whole window starts again from the short backoff.
        slot.backoff_s = (
            self.backoff_base_s
            if not slot.restarts
            else min(self.backoff_max_s, max(slot.backoff_s, self.backoff_base_s) * 2)
        )
        slot.restarts.append(now)
        slot.restart_at = now + slot.backoff_s
        log.error(
            "worker process %d (pid %d) exited unexpectedly with %s; restarting it in %.1f s "
            "(restart %d of at most %d within %.0f s)",
            slot.index,
            slot.process.pid,
            describe_exit(code),
            slot.backoff_s,
            len(slot.restarts),
            self.max_restarts,
            self.window_s,
        )
        return True

    def _wait_all(self) -> None:
        for slot in self.slots:
            if slot.process is None:
                continue
            while slot.process.poll() is None:
                try:
                    slot.process.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    continue
