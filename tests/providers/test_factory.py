"""build_provider picks the configured provider with the configured pool and retry policy."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import SecretStr

from agentqueue.providers.anthropic import AnthropicProvider
from agentqueue.providers.factory import build_provider
from agentqueue.providers.openai_compat import OpenAICompatibleProvider
from agentqueue.providers.simulated import SimulatedProvider
from agentqueue.settings import load_settings
from agentqueue.testing.llm_server import LLMTestServer
from tests.providers.conftest import chat


def test_openai_from_environment_talks_to_the_configured_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given AGENTQUEUE_PROVIDER=openai and a base URL, key and pool size in the environment,
    then the built provider calls that endpoint with that pool, and settings hide the key."""
    with LLMTestServer(api_key="sk-from-env-0123456789") as server:
        monkeypatch.setenv("AGENTQUEUE_PROVIDER", "openai")
        monkeypatch.setenv("AGENTQUEUE_OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("AGENTQUEUE_OPENAI_API_KEY", "sk-from-env-0123456789")
        monkeypatch.setenv("AGENTQUEUE_HTTP_MAX_CONNECTIONS", "64")
        monkeypatch.setenv("AGENTQUEUE_HTTP_MAX_CONNECTIONS_PER_HOST", "64")
        monkeypatch.setenv("AGENTQUEUE_PROVIDER_MAX_ATTEMPTS", "2")
        settings = load_settings()
        provider = build_provider(settings)
        assert isinstance(provider, OpenAICompatibleProvider)
        response = provider.complete(chat())
        provider.close()

    assert response.output
    assert provider.pool_size == 64
    assert isinstance(settings.openai_api_key, SecretStr)
    assert "sk-from-env" not in repr(settings) and "sk-from-env" not in str(settings)


def test_each_provider_name_builds_its_provider() -> None:
    """Given each provider name, then build_provider returns that provider type."""
    assert isinstance(build_provider(load_settings(provider="simulated")), SimulatedProvider)
    anthropic = build_provider(load_settings(provider="anthropic", anthropic_api_key="k"))
    assert isinstance(anthropic, AnthropicProvider)
    assert anthropic.pool_size == 10
    anthropic.close()


def test_a_worker_client_or_cli_on_the_simulated_provider_never_loads_httpx() -> None:
    """Given a fresh interpreter, when it loads the worker app, the client and the CLI, then
    httpx (about 6% of the instructions of importing the worker app) is not among its modules:
    the batch endpoints, the HTTP providers' TLS set-up and the alert webhook load it when they
    run."""
    code = (
        "import sys, agentqueue.workers.app, agentqueue.client, agentqueue.cli;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'httpx'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
