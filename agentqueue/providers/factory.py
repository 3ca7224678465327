"""Build the configured provider (`AGENTQUEUE_PROVIDER`)."""

from __future__ import annotations

from urllib.parse import urlsplit

from agentqueue.providers.base import Provider
from agentqueue.providers.batch_base import BatchAPI
from agentqueue.providers.simulated import SimulatedProvider
from agentqueue.settings import Settings


def build_provider(settings: Settings) -> Provider:
    """The provider named by `settings.provider`, ready for concurrent use by threads."""
    if settings.provider == "simulated":
        return SimulatedProvider(
            latency_ms=settings.simulated_latency_ms, failure_rate=settings.simulated_failure_rate
        )
    # Imported here so the simulated path never loads httpx.
    if settings.provider == "openai":
        from agentqueue.providers.openai_compat import OpenAICompatibleProvider

        return OpenAICompatibleProvider.from_settings(settings)
    if settings.provider == "anthropic":
        from agentqueue.providers.anthropic import AnthropicProvider

        return AnthropicProvider.from_settings(settings)
    raise NotImplementedError(f"provider {settings.provider!r} is not built yet")


def build_batch_api(settings: Settings) -> BatchAPI | None:
    """The provider's batch API, or None where there is none to use (`AGENTQUEUE_BATCH_API`:
    `auto` uses OpenAI's and Anthropic's own hosts and the simulated provider's batch mode,
    `on` also a custom endpoint that implements the batch API, `off` never)."""
    mode = settings.batch_api
    if mode == "off":
        return None
    if settings.provider == "simulated":
        from agentqueue.providers.simulated_batches import SimulatedBatches

        return SimulatedBatches()
    if settings.provider == "openai":
        if mode == "auto" and urlsplit(settings.openai_base_url).hostname != "api.openai.com":
            return None
        from agentqueue.providers.openai_batches import OpenAIBatches

        return OpenAIBatches.from_settings(settings)
    if settings.provider == "anthropic":
        host = urlsplit(settings.anthropic_base_url).hostname
        if mode == "auto" and host != "api.anthropic.com":
            return None
        from agentqueue.providers.anthropic_batches import AnthropicBatches

        return AnthropicBatches.from_settings(settings)
    return None
