"""One racing worker process for test_race.py: admit and settle its jobs, report what it saw."""

from __future__ import annotations

from multiprocessing.synchronize import Barrier
from typing import Any

from agentqueue.budget.errors import BudgetExceeded
from agentqueue.budget.gate import BudgetGate
from agentqueue.jobs import AgentJob
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
    every success costs exactly the same), and put a summary on `results`."""
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
    start.wait(timeout=120)
    for offset in range(0, jobs, batch_size):
        admissions = admit(gate, batch[offset : offset + batch_size])
        running = [a for a in admissions if a.decision == "run"]
        for admission in admissions:
            if isinstance(admission.error, BudgetExceeded):
                error = admission.error
                refusals.append((str(error.used_usd), str(error.needed_usd), str(error.limit_usd)))
            elif admission.decision != "run":
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
    results.put({"worker": worker, "admitted": admitted, "charged": charged, "refusals": refusals})


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
