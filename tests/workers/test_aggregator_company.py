"""The aggregator waits for company only while company is known to be coming."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Sequence

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
