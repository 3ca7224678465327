"""Ledger throughput: reserve+settle per second on SQLite and PostgreSQL.

For each backend, 1 and 4 worker processes (spawned) run the real `BudgetGate` against one
scratch database with global and tenant budgets configured (so every reservation checks and
updates the locked usage rows), in two modes:

- single:  admit one job, then settle it               - one job per transaction pair
- batched: admit 50 jobs, then settle the 50          - the batch executor's path

A scratch PostgreSQL database is created and dropped (AGENTQUEUE_TEST_POSTGRES_URL, default
postgres@127.0.0.1:5432) and a temporary SQLite file is used. Default run: ~40 s.

    python bench/ledger.py [--seconds 3] [--batch 50] [--processes 1,4] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

POSTGRES_ADMIN_URL = os.environ.get(
    "AGENTQUEUE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
MODES = ("single", "batched")
GOAL = ("postgres", 4, "batched", 2000.0)


@contextmanager
def scratch_database(backend: str) -> Iterator[str]:
    """A migrated, empty database of `backend` for this run, removed afterwards."""
    from agentqueue.persistence.engine import dispose_all
    from agentqueue.persistence.migrate import upgrade

    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="aqbench-") as directory:
            url = f"sqlite:///{Path(directory) / 'ledger.db'}"
            upgrade(url)
            yield url
            dispose_all()
        return
    name = f"aqbench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        upgrade(url)
        yield url
    finally:
        dispose_all()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def configure_budgets(url: str) -> None:
    from agentqueue.budget.budget_limits import set_budget
    from agentqueue.persistence.engine import get_sessionmaker

    sessions = get_sessionmaker(url)
    now = datetime.now(UTC)
    set_budget(sessions, "global", "daily", Decimal("1000000"), now=now, timezone="UTC")
    set_budget(sessions, "global", "monthly", Decimal("10000000"), now=now, timezone="UTC")
    for tenant in ("t0", "t1"):
        set_budget(
            sessions, f"tenant:{tenant}", "daily", Decimal("500000"), now=now, timezone="UTC"
        )


def worker(
    index: int,
    url: str,
    seconds: float,
    batch: int,
    barrier: Barrier,
    results: Any,
) -> None:
    """Run each mode for `seconds` after all workers are ready; report completed jobs."""
    from agentqueue.budget.gate import AdmissionGroup, BudgetGate
    from agentqueue.jobs import AgentJob
    from agentqueue.persistence.engine import get_sessionmaker
    from agentqueue.persistence.transactions import in_transaction
    from agentqueue.settings import load_settings
    from agentqueue.usage import TokenUsage

    gate = BudgetGate(get_sessionmaker(url), load_settings(database_url=url))
    tenant = f"t{index % 2}"
    prefix = f"w{index}-{uuid.uuid4().hex[:6]}"

    def jobs(mode: str, start: int, count: int) -> list[AgentJob]:
        return [
            AgentJob(
                id=f"{prefix}-{mode}-{n}",
                agent_type="bench",
                tenant=tenant,
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "Summarise this paragraph, briefly."}],
                params={"max_tokens": 256},
                priority="critical",
            )
            for n in range(start, start + count)
        ]

    def admit_and_settle(chunk: list[AgentJob]) -> None:
        """Admit, then settle in a transaction of its own, as the worker's steps do."""
        [admissions] = gate.admit_groups([AdmissionGroup(chunk, datetime.now(UTC))])
        usages = {
            a.job_id: TokenUsage(a.reservation.input_tokens_estimate, 100) for a in admissions
        }
        in_transaction(gate.sessions, lambda session: gate.settle_in(session, usages))

    admit_and_settle(jobs("warmup", 0, 1))  # engine, usage rows and price caches
    for mode in MODES:
        size = 1 if mode == "single" else batch
        # Build jobs ahead of time so the clock measures the ledger, not pydantic.
        pool = jobs(mode, 0, 60_000 if mode == "batched" else 20_000)
        done = 0
        barrier.wait(timeout=120)
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline and done + size <= len(pool):
            chunk = pool[done : done + size]
            admit_and_settle(chunk)
            done += size
        results.put((mode, index, done, time.perf_counter() - started))


def run_config(url: str, processes: int, seconds: float, batch: int) -> dict[str, float]:
    """Jobs reserved and settled per second, per mode, with `processes` workers."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    children = [
        context.Process(target=worker, args=(n, url, seconds, batch, barrier, results))
        for n in range(processes)
    ]
    for child in children:
        child.start()
    reports = [results.get(timeout=300) for _ in range(processes * len(MODES))]
    for child in children:
        child.join(timeout=60)
        if child.exitcode != 0:
            raise RuntimeError(f"benchmark worker exited with {child.exitcode}")
    rates = {}
    for mode in MODES:
        mine = [(done, elapsed) for m, _, done, elapsed in reports if m == mode]
        rates[mode] = sum(done for done, _ in mine) / max(elapsed for _, elapsed in mine)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per mode and configuration")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--processes", default="1,4")
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]

    rows = []
    for backend in args.backends.split(","):
        with scratch_database(backend) as url:
            configure_budgets(url)
            from agentqueue.persistence.engine import dispose_all

            dispose_all()  # children open their own connections
            for processes in counts:
                rates = run_config(url, processes, args.seconds, args.batch)
                for mode in MODES:
                    rows.append((backend, processes, mode, rates[mode]))
                    print(
                        f"  {backend:<9} {processes} proc  {mode:<8} {rates[mode]:>9,.0f}/s",
                        file=sys.stderr,
                    )

    print(
        f"\nreserve+settle per second (batch {args.batch}, {args.seconds:g} s per cell, "
        f"{os.cpu_count()} CPUs)"
    )
    print(f"{'backend':<10} {'processes':>9} {'mode':<8} {'jobs/s':>10}")
    for backend, processes, mode, rate in rows:
        print(f"{backend:<10} {processes:>9} {mode:<8} {rate:>10,.0f}")
    goal = next((r for b, p, m, r in rows if (b, p, m) == GOAL[:3]), None)
    if goal is not None:
        verdict = "met" if goal >= GOAL[3] else "NOT met"
        print(f"\ngoal: >= {GOAL[3]:,.0f}/s on PostgreSQL, 4 processes, batched: {verdict}")


if __name__ == "__main__":
    main()
