"""In-worker batching: concurrent single-message jobs are grouped by `(agent_type, model)`.

The groups are observed where the worker records them: the size of every group it flushes,
counted per `(agent_type, model)` in Redis (`BatchSizes`).
"""

from __future__ import annotations

from collections import Counter

from agentqueue.jobs import JobStatus
from agentqueue.workers.batch_sizes import BatchSizes
from tests.support.pipeline import Pipeline, simple_job

BATCH_SIZE = 4
BATCH_TIMEOUT_MS = 250


def test_mixed_jobs_run_in_batches_of_one_agent_type_and_model(pipeline: Pipeline) -> None:
    """Given 70 single-message jobs over six (agent_type, model) pairs waiting on the queue,
    when one worker takes them concurrently, then every group it flushes holds jobs of one
    pair and at most BATCH_SIZE of them, the group sizes per pair add up to the jobs
    submitted of that pair, some groups are full, and there are far fewer groups than jobs."""
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
    )
    results = pipeline.queue.wait([h.id for h in handles], timeout=60)

    assert {r.status for r in results.values()} == {JobStatus.SUCCEEDED}
    assert all(r.attempts == 1 for r in results.values())
    recorded = BatchSizes(pipeline.queue.redis)
    sizes = {pair: recorded.read(pair) for pair in pairs}
    for pair, groups in sizes.items():
        assert groups, f"no group of {pair} was recorded"
        assert all(1 <= size <= BATCH_SIZE for size in groups), (pair, groups)
        # Every job of the pair ran in exactly one of its groups (so no group mixed pairs).
        assert sum(size * count for size, count in groups.items()) == counts[pair], pair
    # Batching really happened: full batches, and far fewer batches than jobs. (The first job
    # of a pair finds nobody coming and runs alone; the rest gather behind running groups.)
    assert any(BATCH_SIZE in groups for groups in sizes.values())
    assert sum(sum(groups.values()) for groups in sizes.values()) <= len(handles) * 2 // 3
    # Every job's result says which pair it ran as.
    by_pair = Counter((r.agent_type, r.model) for r in results.values())
    assert by_pair == counts
