"""LLM providers behind one small protocol; `build_provider` picks one from settings."""

from __future__ import annotations

from agentqueue.providers.base import (
    Provider,
    ProviderError,
    ProviderRequest,
    ProviderResponse,
)
from agentqueue.providers.factory import build_provider

__all__ = [
    "Provider",
    "ProviderError",
    "ProviderRequest",
    "ProviderResponse",
    "build_provider",
]
