"""A local LLM test server per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentqueue.testing.llm_server import LLMTestServer


@pytest.fixture
def llm_server() -> Iterator[LLMTestServer]:
    with LLMTestServer() as server:
        yield server
