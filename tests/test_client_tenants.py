"""Tenant-scoped clients see, wait for and cancel only their own tenant's jobs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from agentqueue.client import AgentQueue, JobNotFound
from agentqueue.errors import AgentQueueError
from agentqueue.jobs import JobStatus
from tests.support.pipeline import Pipeline, simple_job


def test_two_scoped_clients_cannot_see_or_cancel_each_others_jobs(pipeline: Pipeline) -> None:
    """Given clients scoped to acme and globex and no worker (jobs stay queued), each job
    answers its own tenant's client and is unknown to the other; the operator sees both."""
    acme = AgentQueue(pipeline.settings, tenant="acme")
    globex = AgentQueue(pipeline.settings, tenant="globex")
    try:
        mine = acme.submit(simple_job(1))  # no tenant named: the client's own
        theirs = globex.submit(simple_job(2, tenant="globex"))
        assert acme.status(mine.id).tenant == "acme"
        assert globex.status(theirs.id).tenant == "globex"

        for client, foreign in ((acme, theirs.id), (globex, mine.id)):
            with pytest.raises(JobNotFound) as unknown:
                client.status(foreign)
            never_existed = pytest.raises(JobNotFound)
            with never_existed as missing:
                client.status("no-such-job")
            # Indistinguishable from an id that never existed, but for the id itself.
            assert unknown.value.code == missing.value.code == "job_not_found"
            assert str(unknown.value).replace(foreign, "X") == str(missing.value).replace(
                "no-such-job", "X"
            )
            with pytest.raises(JobNotFound):
                client.cancel(foreign)
            with pytest.raises(JobNotFound):
                client.wait([foreign], timeout=1)
            assert client.statuses([foreign]) == {}

        # The refused cancels changed nothing; the owner can still cancel.
        assert pipeline.queue.status(mine.id).status == JobStatus.QUEUED
        assert pipeline.queue.status(theirs.id).status == JobStatus.QUEUED
        assert acme.cancel(mine.id) is True
        assert globex.status(theirs.id).status == JobStatus.QUEUED

        # Submitting for another tenant is refused with a code, nothing recorded.
        with pytest.raises(AgentQueueError) as refused:
            acme.submit(simple_job(3, tenant="globex", id="acme-for-globex"))
        assert refused.value.code == "tenant_mismatch"
        with pytest.raises(JobNotFound):
            pipeline.queue.status("acme-for-globex")

        # The unscoped operator client sees both.
        assert {r.tenant for r in pipeline.queue.statuses([mine.id, theirs.id]).values()} == {
            "acme",
            "globex",
        }
    finally:
        acme.close()
        globex.close()


def test_agentqueue_tenant_scopes_the_cli(pipeline: Pipeline) -> None:
    """Given AGENTQUEUE_TENANT=acme, `agentqueue status` of a globex job says it does not
    exist, and `agentqueue submit` files the job under acme."""
    theirs = pipeline.queue.submit(simple_job(4, tenant="globex"))
    env = {**os.environ, **pipeline.env, "AGENTQUEUE_TENANT": "acme"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agentqueue.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    status = cli("status", theirs.id)
    assert status.returncode == 2 and "job_not_found" in status.stderr
    submitted = cli("submit", "-a", "support-bot", "-m", "gpt-4o-mini", "-M", "hi", "--id", "c1")
    assert submitted.returncode == 0, submitted.stderr
    assert pipeline.queue.status("c1").tenant == "acme"
