"""The aggregator waits for company only while company is known to be coming."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Sequence

import pytest

from agentqueue.workers.aggregator import BatchAggregator, BatchKey

KEY: BatchKey = ("support-bot", "gpt-4o-mini")
LONG_TIMEOUT_S = 30.0


class Recorder:
    """A stand-in for the executor: records each group it is asked to run."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.lock = threading.Lock()

    def __call__(self, ids: Sequence[str]) -> list[str]:
        with self.lock:
            self.groups.append(list(ids))
        return list(ids)


def _submit_in_thread(
    aggregator: BatchAggregator[list[str]], job_id: str, *, urgent: bool = False
) -> threading.Thread:
    thread = threading.Thread(
        target=aggregator.submit, args=(KEY, job_id), kwargs={"urgent": urgent}
    )
    thread.start()
    return thread


def test_a_lone_job_runs_at_once_when_nobody_else_is_coming() -> None:
    """Given a worker running no other job of the key, when the job is submitted with
    a 30 s batch timeout, then its group of one runs immediately."""
    recorder = Recorder()
    aggregator = BatchAggregator(recorder, size=8, timeout_s=LONG_TIMEOUT_S, company=lambda _: ())
    started = time.monotonic()
    assert aggregator.submit(KEY, "a") == ["a"]
    assert time.monotonic() - started < LONG_TIMEOUT_S / 3
    assert recorder.groups == [["a"]]


def test_a_job_waits_for_announced_company_and_runs_with_it() -> None:
    """Given a worker whose threads run jobs a and b, when a arrives first, then it
    waits for b, and the arrival of b (the last one coming) runs both as one group."""
    recorder = Recorder()
    held: Collection[str] = ("a", "b")
    aggregator = BatchAggregator(recorder, size=8, timeout_s=LONG_TIMEOUT_S, company=lambda _: held)
    first = _submit_in_thread(aggregator, "a")
    time.sleep(0.2)
    assert recorder.groups == [], "a ran although b was known to be coming"
    started = time.monotonic()
    aggregator.submit(KEY, "b")
    first.join(timeout=5)
    assert not first.is_alive()
    assert time.monotonic() - started < LONG_TIMEOUT_S / 3
    assert recorder.groups == [["a", "b"]]


def test_an_urgent_job_never_waits_and_takes_the_waiting_ones_along() -> None:
    """Given job a waiting for company that is still coming, when urgent job u arrives, then u
    runs at once together with a."""
    recorder = Recorder()
    aggregator = BatchAggregator(
        recorder, size=8, timeout_s=LONG_TIMEOUT_S, company=lambda _: ("a", "u", "later")
    )
    first = _submit_in_thread(aggregator, "a")
    time.sleep(0.2)
    assert recorder.groups == []
    aggregator.submit(KEY, "u", urgent=True)
    first.join(timeout=5)
    assert recorder.groups == [["a", "u"]]


def test_a_job_gathers_behind_a_running_group_and_goes_when_it_ends() -> None:
    """Given a group of job a running (its thread still held), when b arrives with nobody else
    coming, then b waits while a's group runs (others may gather with it) and runs as soon as
    a's group ends, not at its 30 s timeout."""
    recorder = Recorder()
    release = threading.Event()
    held = {"a"}

    def slow(ids: Sequence[str]) -> list[str]:
        if "a" in ids:
            release.wait(5)
        return recorder(ids)

    aggregator = BatchAggregator(slow, size=8, timeout_s=LONG_TIMEOUT_S, company=lambda _: held)
    first = _submit_in_thread(aggregator, "a")
    time.sleep(0.2)
    held.add("b")
    second = _submit_in_thread(aggregator, "b")
    time.sleep(0.2)
    assert recorder.groups == [], "b ran while a's group was still running"
    started = time.monotonic()
    release.set()
    for thread in (first, second):
        thread.join(timeout=5)
        assert not thread.is_alive()
    assert time.monotonic() - started < LONG_TIMEOUT_S / 3
    assert recorder.groups == [["a"], ["b"]]


def test_a_finished_job_still_holding_its_thread_is_not_company() -> None:
    """Given job a whose group has run but whose thread the worker still counts as busy, when b
    arrives, then b runs at once instead of waiting for a."""
    recorder = Recorder()
    aggregator = BatchAggregator(
        recorder, size=8, timeout_s=LONG_TIMEOUT_S, company=lambda _: ("a", "b")
    )
    aggregator.submit(KEY, "a", urgent=True)
    started = time.monotonic()
    assert aggregator.submit(KEY, "b") == ["b"]
    assert time.monotonic() - started < LONG_TIMEOUT_S / 3


def test_without_a_company_source_a_group_waits_for_its_timeout() -> None:
    """Given no source of who is coming, when a lone job arrives, then it waits the batch
    timeout before running (the rule for callers that cannot tell)."""
    recorder = Recorder()
    aggregator = BatchAggregator(recorder, size=8, timeout_s=0.3)
    started = time.monotonic()
    aggregator.submit(KEY, "a")
    assert time.monotonic() - started >= 0.3
    assert recorder.groups == [["a"]]


@pytest.mark.parametrize(("calls_s", "b_waits"), [(1.5, False), (0.001, True)])
def test_behind_a_group_in_calls_longer_than_the_timeout_the_next_group_does_not_wait(
    calls_s: float, b_waits: bool
) -> None:
    """Given a 1 s batch timeout and a key whose provider calls take 1.5 s, when job b arrives
    (nobody else coming) while job a's group is in its calls, then b's group runs at once
    instead of waiting (for a's group or the timeout); with calls far shorter than the
    timeout, b still waits behind a's group (group commit)."""
    recorder = Recorder()
    held: set[str] = set()
    call_s = {"warm": calls_s, "a": 0.0 if b_waits else calls_s}
    gate = threading.Event()

    def run(ids: Sequence[str]) -> list[str]:
        if "a" in ids and b_waits:
            gate.wait(5)  # fast calls: a's group stays busy (its database step) a while
        with aggregator.calls_phase():  # what the executor does around its provider calls
            time.sleep(max(call_s.get(job_id, 0.0) for job_id in ids))
        return recorder(ids)

    aggregator = BatchAggregator(run, size=8, timeout_s=1.0, company=lambda _: held)
    aggregator.submit(KEY, "warm")  # the key's calls are now known to be slow, or fast
    held.add("a")
    first = _submit_in_thread(aggregator, "a")
    time.sleep(0.1)  # a's group is in its calls (or held at the gate)
    held.add("b")
    started = time.monotonic()
    second = _submit_in_thread(aggregator, "b")
    second.join(timeout=0.3 if b_waits else 0.6)
    if b_waits:
        assert second.is_alive(), "b ran although a's group was still busy"
        gate.set()
        second.join(timeout=5)
    else:
        assert not second.is_alive(), "b waited behind a's group in its calls"
        assert time.monotonic() - started < 0.6
    first.join(timeout=5)
    assert not first.is_alive() and not second.is_alive()
    assert recorder.groups[0] == ["warm"]
    assert recorder.groups[1:] == ([["a"], ["b"]] if b_waits else [["b"], ["a"]])
