"""Collect jobs running concurrently in one worker into groups of one `(agent_type, model)`.

Each job keeps its own Celery message and thread; the threads of a group hand their ids to
one leader, which runs the group through the executor and hands each thread its outcome.
A group is flushed when it is full or when its oldest member has waited `timeout_s`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

BatchKey = tuple[str, str]
Report = TypeVar("Report")


@dataclass
class _Group(Generic[Report]):
    key: BatchKey
    created: float = field(default_factory=time.monotonic)
    members: dict[str, Future[Report]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FlushRecord:
    """What a flush looked like, for statistics and tests."""

    key: BatchKey
    size: int
    waited_s: float


class BatchAggregator(Generic[Report]):
    """Thread-safe grouping in front of a `run(job_ids) -> report` callable."""

    def __init__(
        self,
        run: Callable[[Sequence[str]], Report],
        *,
        size: int,
        timeout_s: float,
        on_flush: Callable[[FlushRecord], None] | None = None,
    ) -> None:
        self._run = run
        self.size = max(1, size)
        self.timeout_s = max(0.0, timeout_s)
        self._on_flush = on_flush
        self._lock = threading.Lock()
        self._open: dict[BatchKey, _Group[Report]] = {}

    def submit(self, key: BatchKey, job_id: str) -> Report:
        """Run `job_id` as part of a group; block until its group has run."""
        future: Future[Report] = Future()
        full = duplicate = False
        with self._lock:
            group = self._open.get(key)
            if group is not None and job_id in group.members:
                duplicate = True
            else:
                if group is None:
                    group = _Group[Report](key)
                    self._open[key] = group
                group.members[job_id] = future
                full = len(group.members) >= self.size
                if full:
                    del self._open[key]
        if duplicate:
            # The same message twice at once: the executor's claim lets only one of them run.
            return self._run([job_id])
        if full:
            self._flush(group)
            return future.result()
        remaining = group.created + self.timeout_s - time.monotonic()
        try:
            return future.result(timeout=max(0.0, remaining))
        except TimeoutError:
            pass
        with self._lock:
            mine = self._open.get(key) is group
            if mine:
                del self._open[key]
        if mine:
            self._flush(group)
        return future.result()

    def _flush(self, group: _Group[Report]) -> None:
        ids = list(group.members)
        if self._on_flush is not None:
            self._on_flush(FlushRecord(group.key, len(ids), time.monotonic() - group.created))
        try:
            report = self._run(ids)
        except BaseException as exc:
            for future in group.members.values():
                future.set_exception(exc)
            raise
        for future in group.members.values():
            future.set_result(report)
