"""Where the processes of one worker keep their metric values (prometheus multiprocess mode).

prometheus-client decides at import whether values live in process memory or in files under
PROMETHEUS_MULTIPROC_DIR; the worker command sets the directory before anything imports it, so
the values of every process of the worker add up in one scrape.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(*, wipe: bool) -> Path:
    """Use the operator's PROMETHEUS_MULTIPROC_DIR (emptied first when `wipe`: values of an
    earlier run must not add to this one), or a fresh private directory removed at exit."""
    configured = os.environ.get(ENV)
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        if wipe:
            for stale in path.glob("*.db"):
                stale.unlink(missing_ok=True)
    else:
        path = Path(tempfile.mkdtemp(prefix="agentqueue-metrics-"))
        os.environ[ENV] = str(path)
        atexit.register(_remove_if_owner, path, os.getpid())
    _use_files()
    return path


def _remove_if_owner(path: Path, owner: int) -> None:
    if os.getpid() == owner:  # a forked child must not remove its parent's values
        shutil.rmtree(path, ignore_errors=True)


def _use_files() -> None:
    # prometheus-client picks its value class once, when `values` is imported: if something
    # imported it before the directory was set, make it pick again (no metric exists yet).
    values = sys.modules.get("prometheus_client.values")
    if values is not None:
        values.ValueClass = values.get_value_class()  # type: ignore[attr-defined]


def mark_dead(pid: int) -> None:
    """Forget the live gauges of a process that exited (its counters stay counted)."""
    if os.environ.get(ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
