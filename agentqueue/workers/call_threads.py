"""The threads a worker process makes its provider calls on.

A group's calls run as many at once as there are threads, the calling thread taking its share:
each helper takes the next call until none is left, so a group of a hundred calls costs at most
one hand-off per thread (not one per call), and a group of two costs one, not two.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class CallThreads:
    def __init__(self, threads: int) -> None:
        self.threads = max(1, threads)
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="aq-call")

    def run_each(self, work: Callable[[Item], Outcome], items: Sequence[Item]) -> list[Outcome]:
        """`[work(item) for item in items]`, up to `threads` at once (this thread among them).

        Every item is worked on even if another's `work` raises; the first such error is
        raised once all are done.
        """
        if len(items) <= 1:
            return [work(item) for item in items]
        waiting = deque(enumerate(items))  # popleft is atomic: helpers share it without a lock
        outcomes: dict[int, Outcome] = {}
        errors: list[BaseException] = []

        def take() -> None:
            while True:
                try:
                    index, item = waiting.popleft()
                except IndexError:
                    return
                try:
                    outcomes[index] = work(item)
                except BaseException as error:  # kept for the caller, after the rest are done
                    errors.append(error)

        helpers = [self._pool.submit(take) for _ in range(min(len(items), self.threads) - 1)]
        take()
        for helper in helpers:
            helper.result()
        if errors:
            raise errors[0]
        return [outcomes[index] for index in range(len(items))]

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
