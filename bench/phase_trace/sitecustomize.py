"""Loaded by every Python process started with this folder on PYTHONPATH (`bench/phases.py`
puts it there for the worker processes it starts): when `AQ_PHASE_TRACE_DIR` is set, the
functions in `TRACED` are wrapped, and each call writes its wall time and its thread's CPU
time to `<dir>/<pid>.txt`. Nothing is wrapped without the variable."""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

# module: Class.method, in the order a job meets them
TRACED = {
    "kombu.transport.redis": ["Channel._brpop_read"],
    "agentqueue.workers.aggregator": ["BatchAggregator.submit"],
    "agentqueue.workers.executor": [
        "BatchExecutor.run",
        "BatchExecutor._start",
        "BatchExecutor._call",
        "BatchExecutor._complete",
    ],
    "agentqueue.workers.group_commit": ["GroupCommit.start_groups", "GroupCommit.complete_groups"],
    "agentqueue.workers.call_guard": ["CallGuard.complete"],
    "agentqueue.providers.http_provider": ["HttpProvider.complete"],
    "agentqueue.workers.answer_journal": ["AnswerJournal.record", "AnswerJournal.forget"],
    "agentqueue.results": ["ResultStore.publish"],
    "psycopg.cursor": ["Cursor.execute"],
    "psycopg.connection": ["Connection.commit"],
}

_lock = threading.Lock()
_out: list[Any] = []


def _write(line: str) -> None:
    with _lock:
        if not _out:
            directory = os.environ["AQ_PHASE_TRACE_DIR"]
            _out.append(open(os.path.join(directory, f"{os.getpid()}.txt"), "a", buffering=1))  # noqa: SIM115
        _out[0].write(line)


def _wrap(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def traced(*args: Any, **kwargs: Any) -> Any:
        began, cpu = time.time(), time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            _write(f"{name} {began:.6f} {time.time() - began:.6f} {time.thread_time() - cpu:.6f}\n")

    return traced


def _install(module: ModuleType, names: Sequence[str]) -> None:
    for qualified in names:
        owner_name, method = qualified.split(".")
        owner = getattr(module, owner_name, None)
        if owner is not None:
            setattr(owner, method, _wrap(qualified, getattr(owner, method)))


class _Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in TRACED:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            _install(module, TRACED[name])

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if os.environ.get("AQ_PHASE_TRACE_DIR"):
    sys.meta_path.insert(0, _Hook())
