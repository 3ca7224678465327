"""Flat combining: concurrent requests share runs, each gets its own answer or error."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from agentqueue.workers.coalescer import Coalescer


def test_a_lone_request_runs_at_once_by_itself() -> None:
    runs: list[list[int]] = []

    def run_many(requests: Sequence[int]) -> list[int]:
        runs.append(list(requests))
        return [r * 10 for r in requests]

    coalescer = Coalescer(run_many)
    assert coalescer.submit(3) == 30
    assert coalescer.submit(4) == 40
    assert runs == [[3], [4]]


def test_requests_arriving_during_a_run_share_the_next_run() -> None:
    """Given a run in progress, when 20 threads submit meanwhile, then they are answered
    correctly by fewer runs than requests, and never two runs at once."""
    gate = threading.Event()
    active = 0
    overlap = False
    sizes: list[int] = []
    lock = threading.Lock()

    def run_many(requests: Sequence[int]) -> list[int]:
        nonlocal active, overlap
        with lock:
            active += 1
            overlap = overlap or active > 1
        if requests[0] == -1:
            gate.wait(5)  # the first run holds on while the others queue up
        time.sleep(0.001)
        sizes.append(len(requests))
        with lock:
            active -= 1
        return [r + 1000 for r in requests]

    coalescer = Coalescer(run_many, max_requests=8)
    with ThreadPoolExecutor(max_workers=21) as pool:
        first = pool.submit(coalescer.submit, -1)
        time.sleep(0.05)
        rest = [pool.submit(coalescer.submit, n) for n in range(20)]
        time.sleep(0.1)
        gate.set()
        assert first.result(timeout=10) == 999
        assert [f.result(timeout=10) for f in rest] == [n + 1000 for n in range(20)]
    assert not overlap
    assert sum(sizes) == 21
    assert len(sizes) < 21 and max(sizes) <= 8


def test_an_error_reaches_every_request_of_its_run_and_the_next_run_goes_on() -> None:
    calls = 0

    def run_many(requests: Sequence[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if "bad" in requests:
            raise RuntimeError("database said no")
        return [r.upper() for r in requests]

    coalescer = Coalescer(run_many)
    with pytest.raises(RuntimeError, match="database said no"):
        coalescer.submit("bad")
    assert coalescer.submit("good") == "GOOD"
    assert calls == 2


def test_a_wrong_number_of_results_is_an_error_not_a_mixup() -> None:
    coalescer: Coalescer[int, int] = Coalescer(lambda requests: [1, 2])
    with pytest.raises(RuntimeError, match="different number"):
        coalescer.submit(1)
