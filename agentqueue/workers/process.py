"""Start, stop and kill real worker and beat processes (for the demo, tests and benchmarks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from agentqueue.constants import QUEUES
from agentqueue.workers.supervisor import default_processes


class WorkerProcess:
    """`celery -A agentqueue.workers.app worker` as a child process with its own environment."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        name: str = "worker",
        queues: Sequence[str] = QUEUES,
        concurrency: int = 32,
        pool: str | None = None,
        loglevel: str = "WARNING",
        log_file: Path | None = None,
        app: str = "agentqueue.workers.app",
        extra_args: Sequence[str] = (),
        processes: int | Literal["default"] | None = None,
    ) -> None:
        """`processes`: run `agentqueue worker --processes N` (the supervisor and its Celery
        children) instead of one bare Celery worker; "default" runs `agentqueue worker` with
        its default number (one per CPU)."""
        self.env = {**os.environ, **env}
        self.name = name
        self.hostname = f"{name}-{os.getpid()}-{time.monotonic_ns()}@%h"
        self.processes = default_processes() if processes == "default" else processes
        if processes is not None:
            count = [] if processes == "default" else ["--processes", str(processes)]
            self.argv = [
                sys.executable,
                "-m",
                "agentqueue.cli",
                "worker",
                *count,
                *self._worker_options(concurrency, queues, loglevel, extra_args),
            ]
        else:
            self.argv = self._celery_argv(app, pool, concurrency, queues, loglevel, extra_args)
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None
        self._terminated = False

    def _celery_argv(
        self,
        app: str,
        pool: str | None,
        concurrency: int,
        queues: Sequence[str],
        loglevel: str,
        extra_args: Sequence[str],
    ) -> list[str]:
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            app,
            "worker",
            *(["--pool", pool] if pool else []),
            *self._worker_options(concurrency, queues, loglevel, extra_args),
        ]

    def _worker_options(
        self, concurrency: int, queues: Sequence[str], loglevel: str, extra_args: Sequence[str]
    ) -> list[str]:
        """The options both ways of starting a worker pass alike."""
        return [
            "--concurrency",
            str(concurrency),
            "--queues",
            ",".join(queues),
            "--loglevel",
            loglevel,
            "--hostname",
            self.hostname,
            "--without-mingle",
            "--without-gossip",
            *extra_args,
        ]

    def start(self) -> WorkerProcess:
        output = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._terminated = False
        return self

    def wait_ready(self, celery_app: object, timeout: float = 30.0) -> None:
        """Block until every Celery worker of this process answers a ping over the broker."""
        deadline = time.monotonic() + timeout
        waiting = set(self.node_names)
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"worker exited with code {self.process.returncode}")
            try:
                replies = celery_app.control.ping(destination=sorted(waiting), timeout=0.2)  # type: ignore[attr-defined]
            except Exception:  # the broker restarted under a pooled connection: ask again
                time.sleep(0.2)
                continue
            waiting -= {node for reply in replies for node in reply}
            if not waiting:
                return
        raise TimeoutError(f"worker(s) {sorted(waiting)} did not answer a ping within {timeout} s")

    @property
    def node_name(self) -> str:
        """The node name of the (first) Celery worker."""
        return self.node_names[0]

    @property
    def node_names(self) -> list[str]:
        """The node names of its Celery workers (one each)."""
        hostname = self.hostname.replace("%h", os.uname().nodename)
        if self.processes is None or self.processes == 1:
            return [hostname]
        name, _, host = hostname.partition("@")
        return [f"{name}-{index}@{host}" for index in range(1, self.processes + 1)]

    def children(self) -> list[int]:
        """Pids of the Celery worker processes a supervised worker runs right now."""
        import psutil

        if self.process is None or self.process.poll() is not None:
            return []
        try:
            kids = psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return []
        return [kid.pid for kid in kids if kid.is_running() and kid.status() != "zombie"]

    def terminate(self) -> None:
        """Ask for a warm shutdown (SIGTERM) and return at once; `stop` waits for it (so that
        several workers stop together)."""
        if self.process is not None and self.process.poll() is None and not self._terminated:
            self.process.send_signal(signal.SIGTERM)
            self._terminated = True

    def stop(self, timeout: float = 30.0) -> int | None:
        """Warm shutdown (SIGTERM): finish what it holds, then exit."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int | None:
        """SIGKILL, as a crash would."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.wait(10)


class BeatProcess:
    """`celery -A agentqueue.workers.app beat` with its own environment."""

    def __init__(self, env: Mapping[str, str], directory: Path) -> None:
        self.env = {**os.environ, **env}
        self.argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "agentqueue.workers.app",
            "beat",
            "--loglevel",
            "WARNING",
            "--schedule",
            str(directory / "celerybeat-schedule"),
        ]
        self.log_file = directory / "beat.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> BeatProcess:
        output = open(self.log_file, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            self.argv, env=self.env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
