"""With the database down, no job runs (no provider call, nothing unrecorded); when it is
back, every job completes, charged once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from agentqueue.jobs import JobStatus
from agentqueue.persistence.engine import dispose_all
from agentqueue.persistence.ledger_tables import LedgerEntryRecord
from agentqueue.persistence.migrate import upgrade
from agentqueue.testing import LLMTestServer
from tests.support.pipeline import running_pipeline, simple_job
from tests.support.private_postgres import PrivatePostgres


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres().init()
    server.start()
    try:
        yield server
    finally:
        dispose_all()
        server.destroy()


def test_jobs_wait_for_the_database_and_then_complete(
    private_postgres: PrivatePostgres, redis_url: str, tmp_path: Path
) -> None:
    upgrade(private_postgres.url)
    with (
        LLMTestServer(latency_ms=5) as llm,
        running_pipeline(
            redis_url,
            private_postgres.url,
            tmp_path,
            provider="openai",
            openai_base_url=llm.base_url,
            openai_api_key="test-key",
        ) as pipeline,
    ):
        handles = pipeline.queue.submit_many([simple_job(i) for i in range(10)], packed=False)
        private_postgres.stop()
        dispose_all()

        pipeline.start_worker()
        time.sleep(4)
        assert llm.requests_received == 0, "no provider call may happen without the ledger"

        private_postgres.start()
        results = pipeline.queue.wait([h.id for h in handles], timeout=90)

        assert {r.status for r in results.values()} == {JobStatus.SUCCEEDED}
        assert llm.requests_served == 10
        with pipeline.queue.sessions() as session:
            settled = session.scalar(
                select(func.count())
                .select_from(LedgerEntryRecord)
                .where(LedgerEntryRecord.state == "settled")
            )
        assert settled == 10
