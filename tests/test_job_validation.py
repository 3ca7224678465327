"""Malformed jobs are refused at submit with a stable code, and nothing is recorded or enqueued."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from agentqueue.jobs import JobValidationError, parse_job
from agentqueue.persistence.job_table import JobRecord
from tests.support.pipeline import Pipeline, simple_job

OK = simple_job()
USER = [{"role": "user", "content": "hi"}]


def _with(**changes: Any) -> dict[str, Any]:
    job = json.loads(json.dumps(OK))
    for key, value in changes.items():
        if value is _DROP:
            job.pop(key, None)
        else:
            job[key] = value
    return job


_DROP = object()

MALFORMED: list[tuple[str, Any, str]] = [
    ("not an object", ["a", "list"], "not_an_object"),
    ("not JSON at all", "{this is not json", "invalid_json"),
    ("missing agent type", _with(agent_type=_DROP), "missing_field"),
    ("uppercase agent type", _with(agent_type="Support Bot"), "invalid_agent_type"),
    ("agent type too long", _with(agent_type="a" * 65), "invalid_agent_type"),
    ("missing model", _with(model=_DROP), "missing_field"),
    ("model with spaces", _with(model="gpt 4"), "invalid_model"),
    ("auto without requirements", _with(model="auto"), "missing_requirements"),
    ("missing messages", _with(messages=_DROP), "missing_field"),
    ("empty messages", _with(messages=[]), "invalid_messages"),
    ("unknown role", _with(messages=[{"role": "robot", "content": "x"}]), "invalid_messages"),
    ("message without content", _with(messages=[{"role": "user"}]), "missing_field"),
    ("content not text", _with(messages=[{"role": "user", "content": 5}]), "invalid_messages"),
    ("temperature too high", _with(params={"temperature": 3}), "invalid_params"),
    ("negative max tokens", _with(params={"max_tokens": -1}), "invalid_params"),
    ("top_p zero", _with(params={"top_p": 0}), "invalid_params"),
    ("too many stops", _with(params={"stop": ["a", "b", "c", "d", "e"]}), "invalid_params"),
    ("unknown param", _with(params={"temprature": 0}), "unknown_field"),
    ("unknown priority", _with(priority="urgent"), "invalid_priority"),
    ("tenant with slash", _with(tenant="acme/evil"), "invalid_tenant"),
    ("naive deadline", _with(deadline="2030-01-01T00:00:00"), "invalid_deadline"),
    ("deadline not a date", _with(deadline="tomorrow"), "invalid_deadline"),
    ("job id with spaces", _with(id="my job"), "invalid_job_id"),
    ("job id too long", _with(id="x" * 200), "invalid_job_id"),
    ("unknown cache mode", _with(cache={"mode": "sometimes"}), "invalid_cache_control"),
    ("metadata too big", _with(metadata={"k": "v" * 5000}), "invalid_metadata"),
    ("metadata nested", _with(metadata={"k": {"deep": 1}}), "invalid_metadata"),
    ("unknown top-level field", _with(colour="blue"), "unknown_field"),
    ("fallback with spaces", _with(fallbacks=["gpt 4"]), "invalid_fallbacks"),
    ("too many fallbacks", _with(fallbacks=["gpt-4o"] * 6), "invalid_fallbacks"),
    (
        "negative max cost",
        _with(model="auto", requirements={"max_cost_usd": "-1"}),
        "invalid_requirements",
    ),
    (
        "whole job too large",
        _with(messages=[{"role": "user", "content": "x" * 1_100_000}]),
        "job_too_large",
    ),
]


@pytest.mark.parametrize(("kind", "job", "code"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_each_kind_of_malformed_job_has_a_stable_code(kind: str, job: Any, code: str) -> None:
    """Given a malformed job, parsing refuses it with its code and a sentence naming the part."""
    with pytest.raises(JobValidationError) as raised:
        parse_job(job, max_bytes=1024 * 1024)
    assert raised.value.code == code, raised.value.message
    assert raised.value.message


def test_there_are_at_least_twenty_kinds() -> None:
    assert len(MALFORMED) >= 20
    assert len({code for _, _, code in MALFORMED}) >= 15


def test_a_good_job_passes() -> None:
    job = parse_job(OK, max_bytes=1024 * 1024)
    assert job.agent_type == "support-bot" and len(job.id) == 32


def test_malformed_jobs_leave_nothing_recorded_or_enqueued(pipeline: Pipeline) -> None:
    """Given a batch with one malformed job, submit_many refuses all of it, leaving no trace."""
    client = redis.Redis.from_url(pipeline.settings.redis_url)
    for _, job, code in MALFORMED:
        with pytest.raises(JobValidationError) as raised:
            pipeline.queue.submit_many([simple_job(1), job])
        assert raised.value.code == code
    with pytest.raises(JobValidationError) as raised:
        pipeline.queue.submit_many([simple_job(1, id="a"), simple_job(2, id="a")])
    assert raised.value.code == "duplicate_job_id"

    with pipeline.queue.sessions() as session:
        assert session.scalar(select(func.count()).select_from(JobRecord)) == 0
    assert not [k for k in client.keys("agentqueue*") if client.type(k) == b"list"]


def test_reusing_an_id_for_different_work_is_refused(pipeline: Pipeline) -> None:
    pipeline.queue.submit(simple_job(1, id="order-7"))
    with pytest.raises(JobValidationError) as raised:
        pipeline.queue.submit(simple_job(2, id="order-7"))
    assert raised.value.code == "job_id_conflict"


def test_a_typoed_model_is_refused_at_submit_with_a_suggestion(pipeline: Pipeline) -> None:
    """Given no worker at all, when a job names `gpt4o-mini` (neither priced nor catalogued)
    or a fallback `claude-haiku45`, then submit refuses it with `unknown_model`, suggests the
    real name, and records or enqueues nothing; a priced non-catalog model is accepted."""
    client = redis.Redis.from_url(pipeline.settings.redis_url)
    with pytest.raises(JobValidationError) as typo:
        pipeline.queue.submit(simple_job(1, model="gpt4o-mini"))
    with pytest.raises(JobValidationError) as bad_fallback:
        pipeline.queue.submit_many(
            [simple_job(2), simple_job(3, fallbacks=["gpt-4o", "claude-haiku45"])]
        )
    with pytest.raises(JobValidationError) as nonsense:
        pipeline.queue.submit(simple_job(4, model="zzqx-unheard-of"))

    assert typo.value.code == "unknown_model" and typo.value.field == "model"
    assert "did you mean 'gpt-4o-mini'?" in typo.value.message
    assert bad_fallback.value.code == "unknown_model"
    assert bad_fallback.value.field == "fallbacks.1"
    assert "did you mean 'claude-haiku-4-5'?" in bad_fallback.value.message
    assert nonsense.value.code == "unknown_model" and "did you mean" not in nonsense.value.message
    with pipeline.queue.sessions() as session:
        assert session.scalar(select(func.count()).select_from(JobRecord)) == 0
    assert not [k for k in client.keys("agentqueue*") if client.type(k) == b"list"]
    # Priced by genai-prices though not in the catalog: a valid choice for a fixed model.
    assert pipeline.queue.submit(simple_job(5, model="gpt-4o-mini-2024-07-18")).id
