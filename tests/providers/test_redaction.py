"""API keys never reach logs, errors, exception chains, reprs or results."""

from __future__ import annotations

import logging
import socket
import traceback

import pytest

from agentqueue.providers.anthropic import AnthropicProvider
from agentqueue.providers.base import ProviderError
from agentqueue.providers.openai_compat import OpenAICompatibleProvider
from agentqueue.providers.redaction import REDACTED, Redactor
from agentqueue.testing.llm_server import LLMTestServer
from tests.providers.conftest import FAST_BACKOFF, chat

KEYS = ["sk-agentqueue-SECRET-0123456789abcdef", "plain-secret-WITHOUT-prefix-42"]


def _everything_said(error: BaseException, caplog: pytest.LogCaptureFixture) -> str:
    """Every text a user or operator could see: the error, its chain, its traceback, the logs."""
    parts = [str(error), repr(error), *map(str, error.args)]
    parts += traceback.format_exception(error)
    parts += [record.getMessage() for record in caplog.records]
    parts += [str(record.args) for record in caplog.records]
    return "\n".join(parts)


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("key", KEYS)
def test_wrong_key_echoed_by_the_server_is_redacted(
    key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Given a server that rejects the key and echoes it back in its 401 body (as some APIs do),
    when the call fails, then the auth error names the setting to fix and never the key, and no
    log record (httpx and httpcore debug logs included) contains it."""
    caplog.set_level(logging.DEBUG)
    with LLMTestServer(api_key="the-right-key") as server:
        provider = OpenAICompatibleProvider(base_url=server.base_url, api_key=key)
        with pytest.raises(ProviderError) as caught:
            provider.complete(chat())
        provider.close()

    error = caught.value
    assert error.code == "provider_auth_error"
    assert "AGENTQUEUE_OPENAI_API_KEY" in error.message
    assert REDACTED in error.message
    assert error.__cause__ is None and error.__context__ is None
    assert key not in _everything_said(error, caplog)
    assert key not in repr(provider)


@pytest.mark.parametrize("key", KEYS)
def test_key_stays_out_of_retry_logs_and_exhausted_errors(
    key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Given a server that always answers 500 and a connection that is refused, when calls are
    retried and fail, then neither the retry warnings nor the final errors contain the key."""
    caplog.set_level(logging.DEBUG)
    with LLMTestServer(faults=["status=500"]) as server:
        provider = OpenAICompatibleProvider(
            base_url=server.base_url, api_key=key, backoff=FAST_BACKOFF
        )
        with pytest.raises(ProviderError) as server_error:
            provider.complete(chat())
        provider.close()
    refused = AnthropicProvider(
        base_url=f"http://127.0.0.1:{_unused_port()}", api_key=key, backoff=FAST_BACKOFF
    )
    with pytest.raises(ProviderError) as connect_error:
        refused.complete(chat())
    refused.close()

    assert any("retrying" in r.getMessage() for r in caplog.records)
    for error in (server_error.value, connect_error.value):
        assert error.code == "provider_error"
        assert error.__context__ is None
        assert key not in _everything_said(error, caplog)


def test_successful_results_do_not_carry_the_key(caplog: pytest.LogCaptureFixture) -> None:
    """Given a correct key, when the call succeeds, then nothing in the response holds the key."""
    caplog.set_level(logging.DEBUG)
    key = KEYS[0]
    with LLMTestServer(api_key=key) as server:
        provider = OpenAICompatibleProvider(base_url=server.base_url, api_key=key)
        response = provider.complete(chat())
        provider.close()
    assert key not in repr(response)
    assert all(key not in r.getMessage() for r in caplog.records)


def test_redactor_removes_known_secrets_and_key_shaped_tokens() -> None:
    """Given text holding a known secret, a bearer token and an sk- key, then all are masked."""
    redact = Redactor(["hunter2-long-secret", None, ""])
    text = redact("a hunter2-long-secret b Bearer abc.def c sk-ABCDEFGH12345 d")
    assert "hunter2" not in text and "abc.def" not in text and "sk-ABCDEFGH" not in text
    assert text.count(REDACTED) == 3
    assert "hunter2" not in repr(redact)
