"""The worker side of leases: renew the leases of the jobs in hand, send lost jobs again.

One thread per worker process wakes every third of the lease: it extends this process's
leases on the jobs it is running (so they are never taken from a live worker), then looks
for jobs whose worker died or whose message vanished and publishes them again, and drops
the answers a dead worker kept for jobs it had settled (the worker passes these sweeps). Every
process sweeps, so a restarted (or any surviving) worker recovers a dead one's jobs within
about one lease, with no beat needed.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from agentqueue.jobs import utcnow
from agentqueue.persistence import leases

log = logging.getLogger(__name__)


def new_owner_id() -> str:
    """Names the lease holder in `jobs.lease_owner`: host, process and a nonce per start."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseKeeper:
    """Tracks the jobs this process holds and keeps their leases alive."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        lease_s: int,
        owner: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.lease_s = lease_s
        self.interval_s = lease_s / 3
        self.owner = owner or new_owner_id()
        self._sweeps: Mapping[str, Callable[[], object]] = {}
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def lease_until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.lease_s)

    def hold(self, job_ids: Iterable[str]) -> None:
        with self._lock:
            self._held.update(job_ids)

    def drop(self, job_ids: Iterable[str]) -> None:
        with self._lock:
            self._held.subtract(job_ids)
            for job_id in [i for i, n in self._held.items() if n <= 0]:
                del self._held[job_id]

    def held(self) -> list[str]:
        with self._lock:
            return list(self._held)

    def renew(self) -> int:
        """Extend every held lease now; returns how many were renewed."""
        ids = self.held()
        if not ids:
            return 0
        with self.sessions.begin() as session:
            return leases.renew(session, ids, owner=self.owner, until=self.lease_until(utcnow()))

    def start(self, *, sweeps: Mapping[str, Callable[[], object]] | None = None) -> None:
        """Renew leases, then run each of `sweeps` (what it does -> the sweep), every third
        of the lease from now on; a sweep that fails is logged and runs again next round."""
        self._sweeps = dict(sweeps or {})
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="aq-leases", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        # A little jitter so many processes started together do not sweep in lockstep.
        while not self._stop.wait(self.interval_s * random.uniform(0.8, 1.0)):
            try:
                self.renew()
            except Exception as error:  # the database may be down: try again next round
                log.warning("could not renew job leases: %s", type(error).__name__)
            for what, sweep in self._sweeps.items():
                try:
                    sweep()
                except Exception as error:  # Redis or the database may be down: next round
                    log.warning("could not %s: %s", what, type(error).__name__)
