"""The OpenAI Batch and Anthropic Message Batches clients against the local server's batch
APIs: documented request shapes, results matched by custom_id, per-line errors, cancellation
and expiry, and finding a batch again by its metadata after a crash."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentqueue.providers.anthropic_batches import AnthropicBatches
from agentqueue.providers.base import ProviderRequest
from agentqueue.providers.batch_base import BatchAPI, BatchItem
from agentqueue.providers.openai_batches import OpenAIBatches
from agentqueue.testing.llm_server import LLMTestServer

KEY = "sk-batch-client-key-77aa"


@pytest.fixture
def server() -> Iterator[LLMTestServer]:
    with LLMTestServer(api_key=KEY) as running:
        yield running


def items(tag: str) -> list[BatchItem]:
    texts = ["plain", "FAIL-LINE-400", "FAIL-LINE-500", "another"]
    return [
        BatchItem(
            f"r{i}",
            ProviderRequest(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"{tag} {i} {text}"}],
                max_tokens=40,
            ),
        )
        for i, text in enumerate(texts)
    ]


def clients(server: LLMTestServer) -> list[BatchAPI]:
    return [
        OpenAIBatches(base_url=server.base_url, api_key=KEY),
        AnthropicBatches(base_url=server.url, api_key=KEY),
    ]


def test_a_completed_batch_gives_each_line_its_answer_or_its_error(server: LLMTestServer) -> None:
    """Given four requests, one failing 400 and one 500: two answers with token counts, a
    non-retryable error and a retryable one, each under its own custom_id, for both APIs."""
    for api in clients(server):
        batch = items(api.name)
        remote_id = api.submit("aqb_one", batch)
        poll = api.poll(remote_id, batch)
        assert poll.ended
        answers = {k: r.response for k, r in poll.results.items() if r.response}
        assert sorted(answers) == ["r0", "r3"]
        assert all(
            a.output and a.usage.input_tokens and a.usage.output_tokens for a in answers.values()
        )
        bad, flaky = poll.results["r1"].error, poll.results["r2"].error
        assert bad is not None and not bad.retryable
        assert flaky is not None and flaky.retryable
        api.close()
    stats = server.stats()
    assert stats["batches_created"] == 2 and stats["batch_lines_submitted"] == 8
    assert stats["requests_received"] == 0  # nothing went through the live chat endpoints


def test_cancelled_and_expired_batches_leave_unfinished_lines(server: LLMTestServer) -> None:
    """Given a slow batch: while running it has not ended; cancelled, or expired, its first
    half of lines ran and the rest come back unfinished (never run, never charged)."""
    server.batches.configure(completion_delay_s=600)
    for api in clients(server):
        batch = items(api.name)
        remote_id = api.submit("aqb_slow", batch)
        assert not api.poll(remote_id, batch).ended
        api.cancel(remote_id)
        cancelled = api.poll(remote_id, batch)
        assert cancelled.ended
        assert cancelled.results["r0"].response is not None
        assert cancelled.results["r2"].unfinished and cancelled.results["r3"].unfinished
    server.batches.configure(expire_after_s=0)
    api = clients(server)[0]
    batch = items("expiring")
    remote_id = api.submit("aqb_expiring", batch)
    expired = api.poll(remote_id, batch)
    assert expired.status == "expired"
    assert [k for k, r in sorted(expired.results.items()) if r.unfinished] == ["r2", "r3"]


def test_an_openai_batch_is_found_again_by_our_batch_id(server: LLMTestServer) -> None:
    """Given a batch created with our id in its metadata, find() returns it (so a crashed
    submitter never creates it twice); an id never submitted finds nothing."""
    api = OpenAIBatches(base_url=server.base_url, api_key=KEY)
    remote_id = api.submit("aqb_known", items("find"))
    assert api.find("aqb_known") == remote_id
    assert api.find("aqb_unknown") is None


def test_a_bad_key_fails_without_showing_it(server: LLMTestServer) -> None:
    api = OpenAIBatches(base_url=server.base_url, api_key="sk-wrong-key-1234567890")
    with pytest.raises(Exception) as caught:
        api.submit("aqb_x", items("key"))
    assert "sk-wrong-key-1234567890" not in str(caught.value)
