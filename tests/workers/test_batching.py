"""In-worker batching: concurrent single-message jobs are grouped by `(agent_type, model)`.

The batches are observed where the worker reports them: each flush logs
`batch flushed agent_type=... model=... size=N waited_ms=T` at INFO on `agentqueue.batches`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from agentqueue.jobs import JobStatus
from tests.support.pipeline import Pipeline, simple_job

BATCH_SIZE = 4
BATCH_TIMEOUT_MS = 250
# A flush may come a little after its deadline: thread wake-up on a busy 2-core machine.
FLUSH_MARGIN_MS = 150

_FLUSH_LINE = re.compile(
    r"batch flushed agent_type=(?P<agent_type>\S+) model=(?P<model>\S+) "
    r"size=(?P<size>\d+) waited_ms=(?P<waited_ms>[\d.]+)"
)


@dataclass(frozen=True)
class Flush:
    agent_type: str
    model: str
    size: int
    waited_ms: float


def flushes_in(log: str) -> list[Flush]:
    """Every batch the worker reported flushing, in order."""
    return [
        Flush(m["agent_type"], m["model"], int(m["size"]), float(m["waited_ms"]))
        for m in _FLUSH_LINE.finditer(log)
    ]


def test_mixed_jobs_run_in_batches_of_one_agent_type_and_model(pipeline: Pipeline) -> None:
    """Given 70 single-message jobs over six (agent_type, model) pairs waiting on the queue,
    when one worker takes them concurrently, then every batch it flushes holds one pair and at
    most BATCH_SIZE jobs, is flushed within BATCH_TIMEOUT_MS plus a small margin, and the
    batch sizes per pair add up to the jobs submitted of that pair."""
    pairs = [
        (agent_type, model)
        for agent_type in ("support-bot", "triage", "summariser")
        for model in ("gpt-4o-mini", "claude-3-5-haiku")
    ]
    # Uneven counts, none a multiple of the batch size: some batches must leave before full.
    counts = dict(zip(pairs, [17, 13, 11, 10, 10, 9], strict=True))
    jobs = [
        simple_job(len(pairs) * n + p, agent_type=pair[0], model=pair[1])
        for n in range(max(counts.values()))
        for p, pair in enumerate(pairs)
        if n < counts[pair]
    ]
    handles = pipeline.queue.submit_many(jobs, packed=False)
    assert len(handles) == sum(counts.values()) == 70

    pipeline.start_worker(
        env={
            "AGENTQUEUE_BATCH_SIZE": str(BATCH_SIZE),
            "AGENTQUEUE_BATCH_TIMEOUT_MS": str(BATCH_TIMEOUT_MS),
            "AGENTQUEUE_SIMULATED_LATENCY_MS": "20",
        },
        concurrency=32,
        loglevel="INFO",
    )
    results = pipeline.queue.wait([h.id for h in handles], timeout=60)

    assert {r.status for r in results.values()} == {JobStatus.SUCCEEDED}
    assert all(r.attempts == 1 for r in results.values())
    flushes = flushes_in(pipeline.worker_log())
    assert flushes, "the worker logged no batch flushes at INFO"
    per_pair: Counter[tuple[str, str]] = Counter()
    for flush in flushes:
        assert (flush.agent_type, flush.model) in counts, flush
        assert 1 <= flush.size <= BATCH_SIZE, flush
        assert flush.waited_ms <= BATCH_TIMEOUT_MS + FLUSH_MARGIN_MS, flush
        per_pair[(flush.agent_type, flush.model)] += flush.size
    assert per_pair == counts
    assert sum(per_pair.values()) == len(handles)
    # Batching really happened: full batches, and far fewer batches than jobs.
    assert any(flush.size == BATCH_SIZE for flush in flushes)
    assert len(flushes) <= len(handles) // 2
    # Every job's result says which pair it ran as.
    by_pair = Counter((r.agent_type, r.model) for r in results.values())
    assert by_pair == counts
