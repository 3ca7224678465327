"""Served models: read from the endpoint's listing, refreshed, or configured by hand."""

from __future__ import annotations

import time

from agentqueue.providers.openai_compat import OpenAICompatibleProvider
from agentqueue.ratelimit.served_models import ServedModels
from agentqueue.testing.llm_server import LLMTestServer


def test_the_listing_is_read_then_refreshed_and_a_failure_keeps_the_last_one() -> None:
    listings: list[list[str] | None] = [["gpt-4.1-mini", "Claude-Sonnet-4-0"], None, ["gpt-4o"]]
    calls: list[float] = []

    def lister() -> list[str] | None:
        calls.append(time.monotonic())
        return listings[len(calls) - 1]

    served = ServedModels(lister, refresh_s=0.05)
    assert served.serves("claude-sonnet-4-0") and not served.serves("gpt-4o")
    assert len(calls) == 1  # not asked again before the refresh interval
    time.sleep(0.06)
    assert served.serves("gpt-4.1-mini")  # the listing failed: the last one stands
    time.sleep(0.06)
    assert served.serves("gpt-4o") and not served.serves("gpt-4.1-mini")
    assert len(calls) == 3


def test_configured_list_wins_and_unknown_serves_everything() -> None:
    configured = ServedModels(lambda: ["x"], configured=["a", "B"])
    assert configured.serves("b") and not configured.serves("x")
    assert ServedModels(None).serves("anything")


def test_the_openai_provider_lists_what_the_server_serves() -> None:
    with LLMTestServer(models=["m-1", "m-2"]) as server:
        provider = OpenAICompatibleProvider(base_url=server.base_url)
        try:
            assert provider.list_models() == ["m-1", "m-2"]
        finally:
            provider.close()
    with LLMTestServer() as unlisted:
        provider = OpenAICompatibleProvider(base_url=unlisted.base_url)
        try:
            assert provider.list_models() is None
        finally:
            provider.close()
