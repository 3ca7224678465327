"""Test doubles for the one system we cannot run here: the paid LLM API (a local HTTP server)."""

from __future__ import annotations

from typing import Any

__all__ = ["Arrival", "FaultRule", "LLMTestServer", "LatencyModel"]


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m agentqueue.testing.llm_server` does not import the module twice.
    if name == "LLMTestServer":
        from agentqueue.testing.llm_server import LLMTestServer

        return LLMTestServer
    if name == "Arrival":
        from agentqueue.testing.server_counters import Arrival

        return Arrival
    if name == "FaultRule":
        from agentqueue.testing.faults import FaultRule

        return FaultRule
    if name == "LatencyModel":
        from agentqueue.testing.latency import LatencyModel

        return LatencyModel
    raise AttributeError(name)
