"""Collect jobs running concurrently in one worker into groups of one `(agent_type, model)`.

Each job keeps its own Celery message and thread; the threads of a group hand their ids to
one leader, which runs the group through the executor and hands each thread its outcome.
A job waits for company only while company is known to be coming: another job of its key
already holds a thread (`company`), or a group of its key is running, whose end will let the
waiting group go (group commit: under load, jobs gather while the previous group works).
Otherwise its group runs at once, so a lone job never waits. A group is flushed when it is
full, when an urgent job joins it, when it has nothing left to wait for, or, as a backstop,
when its oldest member has waited `timeout_s`.

Waiting behind a running group pays while its calls are short: the next group goes when it
ends. A key whose calls take longer than `timeout_s` on average would make every job behind a
running group wait the whole timeout; so once such a group's provider calls begin, it stops
holding the next group back, which still gathers the company known to be coming (and goes
when full) but no longer waits out those calls.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

BatchKey = tuple[str, str]
Report = TypeVar("Report")

# Ids of jobs of a key that hold a thread of this worker, whether or not they have reached the
# aggregator yet; the aggregator subtracts the ones it holds, runs or has just run.
CompanySource = Callable[[BatchKey], Collection[str]]
# Ids of jobs whose group has run, remembered for a while: their threads are still returning
# from the task, so the worker still counts them as busy for a moment.
FINISHED_MEMORY = 4096
# Smoothing of the average duration of a key's provider calls.
CALLS_SMOOTHING = 0.3


@dataclass
class _Group(Generic[Report]):
    key: BatchKey
    created: float = field(default_factory=time.monotonic)
    members: dict[str, Future[Report]] = field(default_factory=dict)
    go: threading.Event = field(default_factory=threading.Event)
    # Set once the group no longer holds the next group of its key back (its slow calls began).
    let_go: bool = False


@dataclass(frozen=True, slots=True)
class FlushRecord:
    """What a flush looked like, for statistics and tests."""

    key: BatchKey
    size: int
    waited_s: float


def _nobody(_: BatchKey) -> Collection[str]:
    return ()


class BatchAggregator(Generic[Report]):
    """Thread-safe grouping in front of a `run(job_ids) -> report` callable."""

    def __init__(
        self,
        run: Callable[[Sequence[str]], Report],
        *,
        size: int,
        timeout_s: float,
        on_flush: Callable[[FlushRecord], None] | None = None,
        company: CompanySource | None = None,
    ) -> None:
        self._run = run
        self.size = max(1, size)
        self.timeout_s = max(0.0, timeout_s)
        self._on_flush = on_flush
        # Without a source of who is coming, every group waits its timeout (the old rule).
        self._company = company
        self._lock = threading.Lock()
        self._open: dict[BatchKey, _Group[Report]] = {}
        self._running: set[str] = set()
        self._busy: dict[BatchKey, int] = {}
        self._finished: set[str] = set()
        self._finished_order: deque[str] = deque()
        self._calls_s: dict[BatchKey, float] = {}  # smoothed duration of a group's calls
        self._flushing = threading.local()  # the group the current thread is running

    def submit(self, key: BatchKey, job_id: str, *, urgent: bool = False) -> Report:
        """Run `job_id` as part of a group; block until its group has run.

        An `urgent` job never waits: it takes whoever is already waiting along at once.
        """
        future: Future[Report] = Future()
        flush_now = duplicate = False
        with self._lock:
            group = self._open.get(key)
            if job_id in self._running or (group is not None and job_id in group.members):
                duplicate = True
            else:
                if group is None:
                    group = _Group[Report](key)
                    self._open[key] = group
                group.members[job_id] = future
                flush_now = (
                    urgent or len(group.members) >= self.size or not self._worth_waiting(group)
                )
                if flush_now:
                    self._take(group)
        if duplicate or group is None:
            # The same message twice at once: the executor's claim lets only one of them run.
            return self._run([job_id])
        if flush_now:
            self._flush(group)
            return future.result()
        group.go.wait(timeout=max(0.0, group.created + self.timeout_s - time.monotonic()))
        with self._lock:
            mine = self._open.get(key) is group
            if mine:
                self._take(group)
        if mine:
            self._flush(group)
        return future.result()

    def _take(self, group: _Group[Report]) -> None:
        """Close `group` for newcomers and count it as running (caller holds the lock)."""
        del self._open[group.key]
        group.go.set()  # members still waiting now wait for the outcome instead
        self._running.update(group.members)
        self._busy[group.key] = self._busy.get(group.key, 0) + 1

    def _worth_waiting(self, group: _Group[Report]) -> bool:
        """Whether company for `group` is known to come (caller holds the lock)."""
        if self._company is None or self._busy.get(group.key, 0) > 0:
            return True
        return any(
            job_id not in group.members
            and job_id not in self._running
            and job_id not in self._finished
            for job_id in self._company(group.key)
        )

    @contextmanager
    def calls_phase(self) -> Iterator[None]:
        """Surrounds the provider calls of the group the current thread runs (the executor
        enters it); outside a flush it does nothing."""
        group: _Group[Report] | None = getattr(self._flushing, "group", None)
        if group is None:
            yield
            return
        with self._lock:
            if self._calls_s.get(group.key, 0.0) > self.timeout_s and not group.let_go:
                group.let_go = True
                waiting = self._idle(group.key)
                # It still gathers the company known to be coming; it no longer waits for us.
                if waiting is not None and not self._worth_waiting(waiting):
                    waiting.go.set()
        began = time.monotonic()
        try:
            yield
        finally:
            took = time.monotonic() - began
            with self._lock:
                before = self._calls_s.get(group.key)
                self._calls_s[group.key] = (
                    took if before is None else before + CALLS_SMOOTHING * (took - before)
                )

    def _idle(self, key: BatchKey) -> _Group[Report] | None:
        """One running group of `key` less; the group waiting behind it, if any (caller holds
        the lock)."""
        self._busy[key] -= 1
        if not self._busy[key]:
            del self._busy[key]
        return self._open.get(key)

    def _remember_finished(self, ids: Sequence[str]) -> None:
        for job_id in ids:
            if job_id not in self._finished:
                self._finished.add(job_id)
                self._finished_order.append(job_id)
        while len(self._finished_order) > FINISHED_MEMORY:
            self._finished.discard(self._finished_order.popleft())

    def _flush(self, group: _Group[Report]) -> None:
        ids = list(group.members)
        if self._on_flush is not None:
            self._on_flush(FlushRecord(group.key, len(ids), time.monotonic() - group.created))
        self._flushing.group = group
        try:
            report = self._run(ids)
        except BaseException as exc:
            for future in group.members.values():
                future.set_exception(exc)
            raise
        finally:
            self._flushing.group = None
            with self._lock:
                self._running.difference_update(ids)
                self._remember_finished(ids)
                waiting = None if group.let_go else self._idle(group.key)
                if waiting is not None:
                    waiting.go.set()
        for future in group.members.values():
            future.set_result(report)
