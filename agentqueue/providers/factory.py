"""Build the configured provider (`AGENTQUEUE_PROVIDER`)."""

from __future__ import annotations

from agentqueue.providers.base import Provider
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
