"""One racing worker process for test_race.py: admit and settle its jobs, report what it saw."""

from __future__ import annotations

import time
from datetime import datetime
from multiprocessing.synchronize import Barrier
from typing import Any

from agentqueue.budget.errors import BudgetExceeded
from agentqueue.budget.gate import AdmissionGroup, BudgetGate
from agentqueue.jobs import AgentJob, utcnow
from agentqueue.persistence.engine import get_sessionmaker
from agentqueue.settings import load_settings
from agentqueue.usage import TokenUsage
from tests.budget.conftest import admit, settle


def race(
    worker: int,
    database_url: str,
    prices_file: str,
    jobs: int,
    batch_size: int,
    start: Barrier,
    results: Any,
) -> None:
    """Admit `jobs` critical jobs in batches, settle each admitted one at its worst case (so
    every success costs exactly the same), ask again for those told to wait, and put a
    summary on `results`."""
    settings = load_settings(database_url=database_url, prices_file=prices_file)
    gate = BudgetGate(get_sessionmaker(database_url), settings)
    batch = [
        AgentJob(
            id=f"race-{worker}-{n}",
            agent_type="racer",
            tenant="acme",
            model="race-model",
            priority="critical",
            messages=[{"role": "user", "content": "x"}],
            params={"max_tokens": 1},
        )
        for n in range(jobs)
    ]
    admitted = 0
    charged = []
    refusals = []
    waits = 0
    start.wait(timeout=120)
    for offset in range(0, jobs, batch_size):
        pending = batch[offset : offset + batch_size]
        since: dict[str, datetime] = {}
        while pending:
            admissions = gate.admit_groups(
                [AdmissionGroup(pending, utcnow(), waiting_since=since)]
            )[0]
            running = [a for a in admissions if a.decision == "run"]
            waiting = {a.job_id for a in admissions if a.decision == "wait"}
            for admission in admissions:
                if isinstance(admission.error, BudgetExceeded):
                    error = admission.error
                    refusals.append(
                        (str(error.spent_usd), str(error.needed_usd), str(error.limit_usd))
                    )
                elif admission.decision not in ("run", "wait"):
                    raise AssertionError(f"unexpected admission {admission}")
            costs = settle(
                gate,
                {
                    a.job_id: TokenUsage(
                        a.reservation.input_tokens_estimate, a.reservation.max_output_tokens
                    )
                    for a in running
                },
            )
            admitted += len(running)
            charged.extend(str(costs[a.job_id]) for a in running)
            # Waiting jobs ask again, as a worker's retry would (sooner: this is a race).
            pending = [job for job in pending if job.id in waiting]
            since = {job.id: since.get(job.id, utcnow()) for job in pending}
            waits += len(pending)
            if pending:
                time.sleep(0.005)
    results.put(
        {
            "worker": worker,
            "admitted": admitted,
            "charged": charged,
            "refusals": refusals,
            "waits": waits,
        }
    )


def redeliver(
    worker: int, database_url: str, prices_file: str, jobs: int, start: Barrier, results: Any
) -> None:
    """Admit and settle the SAME job ids as every other process (redelivered messages)."""
    settings = load_settings(database_url=database_url, prices_file=prices_file)
    gate = BudgetGate(get_sessionmaker(database_url), settings)
    start.wait(timeout=120)
    outcomes = []
    for n in range(jobs):
        job = AgentJob(
            id=f"shared-{n}",
            agent_type="racer",
            tenant="acme",
            model="race-model",
            priority="critical",
            messages=[{"role": "user", "content": "x"}],
            params={"max_tokens": 1},
        )
        [admission] = admit(gate, [job])
        outcomes.append((admission.decision, admission.already_settled))
        if admission.decision == "run" and not admission.already_settled:
            settle(gate, {job.id: TokenUsage(admission.reservation.input_tokens_estimate, 1)})
    results.put({"worker": worker, "outcomes": outcomes})
