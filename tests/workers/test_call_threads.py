"""A group's provider calls: all at once up to the thread count, the calling thread among them,
one hand-off per helper thread, and every call made even when one fails."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from agentqueue.workers.call_threads import CallThreads


@pytest.fixture
def threads() -> Iterator[CallThreads]:
    pool = CallThreads(4)
    yield pool
    pool.shutdown()


def test_outcomes_come_back_in_the_items_order(threads: CallThreads) -> None:
    def work(item: int) -> int:
        time.sleep(0.001 * (item % 3))
        return item * 10

    assert threads.run_each(work, list(range(40))) == [i * 10 for i in range(40)]


def test_as_many_run_at_once_as_there_are_threads_the_caller_included(
    threads: CallThreads,
) -> None:
    """Four threads, four calls that each wait for all four: they finish only if the calling
    thread and three helpers run them at the same time."""
    everyone = threading.Barrier(4, timeout=5)

    def work(item: int) -> str:
        everyone.wait()
        return threading.current_thread().name

    names = threads.run_each(work, [1, 2, 3, 4])
    assert threading.current_thread().name in names and len(set(names)) == 4


def test_never_more_at_once_than_the_threads_and_one_hand_off_per_helper(
    threads: CallThreads,
) -> None:
    lock = threading.Lock()
    running = most = 0
    workers: set[str] = set()

    def work(item: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            workers.add(threading.current_thread().name)
        time.sleep(0.002)
        with lock:
            running -= 1
        return item

    assert threads.run_each(work, list(range(100))) == list(range(100))
    assert most <= 4
    assert len(workers) <= 4  # the caller and at most three helpers took all hundred


def test_one_failure_stops_no_other_call_and_is_raised_after_all(threads: CallThreads) -> None:
    done: list[int] = []

    def work(item: int) -> int:
        if item == 2:
            raise ValueError("call 2 broke")
        time.sleep(0.001)
        done.append(item)
        return item

    with pytest.raises(ValueError, match="call 2 broke"):
        threads.run_each(work, list(range(12)))
    assert sorted(done) == [i for i in range(12) if i != 2]


def test_a_lone_call_runs_on_the_calling_thread(threads: CallThreads) -> None:
    assert threads.run_each(lambda _: threading.current_thread().name, ["x"]) == [
        threading.current_thread().name
    ]
