"""A Celery threads pool that can grow and shrink, so the autoscaler can resize it.

Celery's own `threads` pool has no `grow`/`shrink` (a `ThreadPoolExecutor` cannot lose
threads), so autoscaling it fails. Here every job first takes a slot from a gate whose size
is the pool's concurrency: growing widens the gate (and lets the executor start threads up
to the new size), shrinking narrows it, and jobs beyond the limit wait, unstarted and
unacknowledged, until a slot frees. Select it with
`worker_pool = "agentqueue.workers.thread_pool:ResizableThreadPool"`.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery.concurrency.base import BasePool, apply_target
from celery.concurrency.thread import ApplyResult, TaskPool  # type: ignore[attr-defined]


class SlotGate:
    """Lets at most `limit` jobs run at once; the limit may change while jobs wait."""

    def __init__(self, limit: int) -> None:
        self._condition = threading.Condition()
        self._limit = limit
        self._running = 0
        self._closed = False

    @property
    def running(self) -> int:
        return self._running

    def enter(self) -> bool:
        """Wait for a slot; False when the gate closed meanwhile (the job must not run)."""
        with self._condition:
            while not self._closed and self._running >= self._limit:
                self._condition.wait()
            if self._closed:
                return False
            self._running += 1
            return True

    def leave(self) -> None:
        with self._condition:
            self._running -= 1
            self._condition.notify()

    def resize(self, limit: int) -> None:
        with self._condition:
            self._limit = limit
            self._condition.notify_all()

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()


class ResizableThreadPool(TaskPool):
    """Celery's threads pool plus `grow`, `shrink` and a `busy` count for the autoscaler."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Not TaskPool.__init__: its executor refuses a size of 0 (`--autoscale N,0`).
        BasePool.__init__(self, *args, **kwargs)
        self.limit = int(self.limit if self.limit is not None else 1)
        self._resize_lock = threading.Lock()
        self._gate = SlotGate(self.limit)
        self.executor = ThreadPoolExecutor(
            max_workers=max(self.limit, 1), thread_name_prefix="aq-job"
        )

    @property
    def busy(self) -> int:
        """Jobs running now (those waiting for a slot are not counted)."""
        return self._gate.running

    @property
    def num_processes(self) -> int:
        return int(self.limit)

    def grow(self, n: int = 1) -> None:
        with self._resize_lock:
            self.limit += n
            executor = self.executor
            if executor._max_workers < self.limit:
                # An executor only ever starts threads up to `_max_workers`, one per submit;
                # raise the ceiling and start the new threads now, or jobs already queued
                # inside it would wait for the next submit.
                added = self.limit - executor._max_workers
                executor._max_workers = self.limit
                for _ in range(added):
                    executor._adjust_thread_count()
            self._gate.resize(self.limit)

    def shrink(self, n: int = 1) -> None:
        """Narrow the gate; running jobs finish, and no new job starts above the new size."""
        with self._resize_lock:
            if self.limit <= 0:
                raise ValueError("the pool has no slots left to remove")
            self.limit = max(0, self.limit - n)
            self._gate.resize(self.limit)

    def on_apply(
        self,
        target: Any,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        callback: Any = None,
        accept_callback: Any = None,
        **_: Any,
    ) -> ApplyResult:
        future = self.executor.submit(
            self._run_in_slot, target, args, kwargs, callback, accept_callback
        )
        return ApplyResult(future)

    def on_stop(self) -> None:
        # Waiting jobs give up their turn; their messages stay unacked and are redelivered.
        self._gate.close()
        super().on_stop()

    def _get_info(self) -> Any:
        info = super()._get_info()  # type: ignore[misc]
        info.update({"busy": self.busy})
        return info

    def _run_in_slot(
        self,
        target: Any,
        args: tuple[Any, ...] | None,
        kwargs: dict[str, Any] | None,
        callback: Any,
        accept_callback: Any,
    ) -> None:
        if not self._gate.enter():
            return
        try:
            apply_target(target, args, kwargs, callback, accept_callback)
        finally:
            self._gate.leave()
