"""The batch aggregator on its own: groups by key, flushes when full or on its timer, runs a
repeated id alone, and hands an exception to every job of the group."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from agentqueue.workers.aggregator import BatchAggregator, FlushRecord

KEY = ("support-bot", "gpt-4o-mini")
# Long enough that a test waiting for it would fail its own `result(timeout=...)` first.
NEVER_S = 60.0


class Recorder:
    """A `run` that records every group it was given and answers with the group's number."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.flushes: list[FlushRecord] = []
        self._lock = threading.Lock()

    def run(self, ids: Sequence[str]) -> int:
        with self._lock:
            self.groups.append(list(ids))
            return len(self.groups)


def submit_all(
    aggregator: BatchAggregator[int], ids: Sequence[str], key: tuple[str, str] = KEY
) -> list[Future[int]]:
    pool = ThreadPoolExecutor(max_workers=len(ids))
    futures = [pool.submit(aggregator.submit, key, job_id) for job_id in ids]
    pool.shutdown(wait=False)
    return futures


def test_a_full_group_runs_at_once_with_every_member() -> None:
    """Given a group size of 3 and a timer that never fires in time, when 3 jobs of one key
    arrive, then the group runs once with all three and each job gets that group's report."""
    recorder = Recorder()
    aggregator = BatchAggregator(
        recorder.run, size=3, timeout_s=NEVER_S, on_flush=recorder.flushes.append
    )
    futures = submit_all(aggregator, ["j1", "j2", "j3"])
    reports = [future.result(timeout=10) for future in futures]
    assert reports == [1, 1, 1]
    assert [sorted(group) for group in recorder.groups] == [["j1", "j2", "j3"]]
    assert [(f.key, f.size) for f in recorder.flushes] == [(KEY, 3)]


def test_a_group_that_is_not_full_leaves_on_its_timer() -> None:
    """Given a group size of 10 and a 0.5 s timer, when 2 jobs arrive together, then both
    run in one group once the oldest has waited the timer, not before."""
    recorder = Recorder()
    aggregator = BatchAggregator(
        recorder.run, size=10, timeout_s=0.5, on_flush=recorder.flushes.append
    )
    futures = submit_all(aggregator, ["j1", "j2"])
    assert [future.result(timeout=10) for future in futures] == [1, 1]
    assert [sorted(group) for group in recorder.groups] == [["j1", "j2"]]
    [flush] = recorder.flushes
    assert flush.size == 2 and flush.waited_s >= 0.5


def test_keys_never_share_a_group() -> None:
    """Given two keys, then each group holds jobs of one key only."""
    recorder = Recorder()
    aggregator = BatchAggregator(recorder.run, size=2, timeout_s=NEVER_S)
    futures = submit_all(aggregator, ["a1", "a2"]) + submit_all(
        aggregator, ["b1", "b2"], key=("triage", "gpt-4o")
    )
    for future in futures:
        future.result(timeout=10)
    assert sorted(sorted(group) for group in recorder.groups) == [["a1", "a2"], ["b1", "b2"]]


def test_an_id_already_waiting_in_the_group_runs_alone() -> None:
    """Given a job waiting in an open group, when the same id arrives again (a redelivered
    message), then the second copy runs alone at once, and the group still runs the first."""
    recorder = Recorder()
    aggregator = BatchAggregator(
        recorder.run, size=5, timeout_s=1.0, on_flush=recorder.flushes.append
    )
    [first] = submit_all(aggregator, ["j1"])
    # Wait until the first copy holds the open group.
    for _ in range(500):
        if aggregator._open:
            break
        threading.Event().wait(0.01)
    assert aggregator._open, "the first copy never opened a group"
    second = aggregator.submit(KEY, "j1")
    assert second == 1 and recorder.groups == [["j1"]]
    assert recorder.flushes == []  # the lone copy is not a group flush
    assert first.result(timeout=10) == 2
    assert recorder.groups == [["j1"], ["j1"]]
    assert [flush.size for flush in recorder.flushes] == [1]


def test_an_exception_reaches_every_job_of_the_group() -> None:
    """Given a run that raises, when a full group of 3 runs, then every one of the three
    waiting jobs raises that exception (none hangs, none gets a report)."""

    def broken(ids: Sequence[str]) -> int:
        raise RuntimeError(f"the executor failed for {len(ids)} jobs")

    aggregator: BatchAggregator[int] = BatchAggregator(broken, size=3, timeout_s=NEVER_S)
    futures = submit_all(aggregator, ["j1", "j2", "j3"])
    for future in futures:
        with pytest.raises(RuntimeError, match="failed for 3 jobs"):
            future.result(timeout=10)
