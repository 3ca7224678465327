"""A redis-server of one test's own on a free TCP port, which the test may kill or shut down.

The shared Redis is never broken; fault tests break this one. It snapshots to its directory
(so a SHUTDOWN keeps the data, as a production restart would) unless `save` is off.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import redis

from agentqueue.demo.embedded_redis import redis_server_binary
from tests.support.services import free_port


class PrivateRedis:
    def __init__(self, directory: Path, *, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)

    def start(self, timeout: float = 10.0) -> PrivateRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "3600 1",
                "--appendonly",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"private redis-server exited ({self.process.returncode})")
            try:
                self.client().ping()
                return self
            except (redis.RedisError, OSError):
                time.sleep(0.05)
        raise TimeoutError("private redis-server did not start")

    def kill(self) -> None:
        """kill -9: everything since the last snapshot is gone."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def shutdown(self) -> None:
        """SHUTDOWN: Redis saves its snapshot and exits, as in an orderly restart."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(redis.RedisError, OSError):
                self.client().shutdown(save=True)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
