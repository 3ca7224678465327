"""Flat combining: requests that arrive while one run is in progress are run together next.

Groups of jobs that finish their provider calls at about the same time each need a database
transaction; a `Coalescer` lets whichever thread comes first run the transaction for every
group waiting at that moment (one BEGIN/COMMIT, one statement per step), while the others
wait for their share of the answer. It never waits for company: with one group in flight it
runs alone at once, so it adds no latency and merges only under load.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")


class _Slot(Generic[Request, Result]):
    """One request and its outcome. A thread that has to wait holds a gate: a lock taken when
    the slot is queued (under the coalescer's lock) and released when its outcome is in or it
    becomes the lead. A bare lock, not a `threading.Event`: a busy worker makes one slot per
    group and step, and an Event (a Condition and its lock) cost 4% of its time."""

    __slots__ = ("_gate", "error", "lead", "request", "result")

    def __init__(self, request: Request) -> None:
        self.request = request
        self._gate: threading.Lock | None = None
        self.lead = False
        self.result: Result | None = None
        self.error: BaseException | None = None

    def hold(self) -> None:
        gate = threading.Lock()
        gate.acquire()
        self._gate = gate

    def wait(self) -> None:
        assert self._gate is not None
        self._gate.acquire()

    def release(self) -> None:
        """Wake the thread in `wait` (or let it through if it is not there yet). A successor's
        slot is released twice, to make it the lead and when its own run ends: its `wait` took
        the gate in between. The lead's own slot has no gate: nobody waits on it."""
        if self._gate is not None:
            self._gate.release()

    def outcome(self) -> Result:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class Coalescer(Generic[Request, Result]):
    """`submit(request)` returns `run_many(requests)[i]` for its request, where `run_many` ran
    the requests pending at the time; one run at a time, an exception goes to every request
    of its run."""

    def __init__(
        self,
        run_many: Callable[[Sequence[Request]], Sequence[Result]],
        *,
        max_requests: int = 64,
    ) -> None:
        self._run_many = run_many
        self._max = max(1, max_requests)
        self._lock = threading.Lock()
        self._pending: list[_Slot[Request, Result]] = []
        self._busy = False

    def submit(self, request: Request) -> Result:
        slot: _Slot[Request, Result] = _Slot(request)
        with self._lock:
            self._pending.append(slot)
            lead = not self._busy
            self._busy = True
            if not lead:
                slot.hold()
        if not lead:
            slot.wait()
            if not slot.lead:
                return slot.outcome()
        # This thread runs the next round, which holds its own request.
        with self._lock:
            batch = self._pending[: self._max]
            del self._pending[: self._max]
        try:
            self._run(batch)
        finally:
            with self._lock:
                if self._pending:
                    successor = self._pending[0]
                    successor.lead = True
                    successor.release()
                else:
                    self._busy = False
        return slot.outcome()

    def _run(self, batch: list[_Slot[Request, Result]]) -> None:
        try:
            results = self._run_many([slot.request for slot in batch])
            if len(results) != len(batch):
                raise RuntimeError("run_many returned a different number of results")
        except BaseException as error:
            for slot in batch:
                slot.error = error
                slot.release()
            return
        for slot, result in zip(batch, results, strict=True):
            slot.result = result
            slot.release()
