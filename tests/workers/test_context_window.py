"""Long conversations are pruned to the model's context window before cost is estimated."""

from __future__ import annotations

import json
from pathlib import Path

from agentqueue.budget.catalog import load_catalog
from agentqueue.budget.tokens import estimate_input_tokens
from agentqueue.jobs import JobStatus, parse_job
from agentqueue.workers.context_window import fit_to_context
from tests.support.pipeline import running_pipeline


def _catalog_file(tmp_path: Path, window: int) -> Path:
    path = tmp_path / "catalog.json"
    path.write_text(
        json.dumps(
            {
                "models": [
                    {
                        "id": "gpt-4o-mini",
                        "provider": "openai",
                        "quality": 0.6,
                        "latency_ms": 500,
                        "context_window": window,
                        "max_output_tokens": 1000,
                    }
                ]
            }
        )
    )
    return path


def _conversation(turns: int) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": "You are a careful support agent."}]
    for i in range(turns):
        role = "user" if i % 2 == 0 else "assistant"
        content = f"turn {i}: " + "details about the order and its shipping " * 3
        if i == 7:
            content = "Remember: the customer is allergic to peanuts. " + content
        messages.append({"role": role, "content": content})
    return messages


def test_a_long_conversation_is_fitted_and_the_saving_recorded(tmp_path: Path) -> None:
    catalog = load_catalog(_catalog_file(tmp_path, 2_000))
    job = parse_job(
        {
            "agent_type": "support",
            "model": "gpt-4o-mini",
            "messages": _conversation(500),
            "params": {"max_tokens": 200},
        },
        max_bytes=1 << 22,
    )

    fitted = fit_to_context(job, catalog, default_max_tokens=1024, chars_per_token=3.0)

    kept = fitted.job.messages
    assert estimate_input_tokens(kept) <= 2_000 - 200
    assert fitted.tokens_saved > 0
    assert kept[0].role == "system"
    assert any("Remember" in m.content for m in kept)
    assert kept[-1].content == job.messages[-1].content
    positions = [job.messages.index(m) for m in kept]
    assert positions == sorted(positions)


def test_a_short_conversation_is_left_alone(tmp_path: Path) -> None:
    catalog = load_catalog(_catalog_file(tmp_path, 2_000))
    job = parse_job(
        {"agent_type": "support", "model": "gpt-4o-mini", "messages": _conversation(4)},
        max_bytes=1 << 22,
    )
    fitted = fit_to_context(job, catalog, default_max_tokens=200, chars_per_token=3.0)
    assert fitted.job is job and fitted.tokens_saved == 0


def test_the_worker_prunes_and_the_result_says_how_much(
    redis_url: str, postgres_url: str, tmp_path: Path
) -> None:
    catalog = _catalog_file(tmp_path, 3_000)
    with running_pipeline(
        redis_url, postgres_url, tmp_path, catalog_file=str(catalog), max_job_bytes=str(1 << 22)
    ) as pipeline:
        pipeline.start_worker()
        result = pipeline.queue.submit(
            {
                "agent_type": "support",
                "model": "gpt-4o-mini",
                "messages": _conversation(500),
                "params": {"max_tokens": 100},
            }
        ).get(timeout=30)
    assert result.status is JobStatus.SUCCEEDED
    assert result.context_tokens_saved > 0
    assert result.usage.input_tokens < 3_000
