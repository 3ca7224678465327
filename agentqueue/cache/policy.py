"""Cache policies: for each kind of result, how long it lives and in which tiers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from agentqueue.setting_types.tiers import TIER_ORDER, TierName
from agentqueue.settings import Settings

PolicyName = Literal["agent_response", "model_output", "conversation_context", "tool_result"]
POLICY_NAMES: tuple[PolicyName, ...] = (
    "agent_response",
    "model_output",
    "conversation_context",
    "tool_result",
)


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """Where a kind of result is written and read, and its default time to live."""

    name: str
    ttl_s: int
    tiers: frozenset[TierName]
    # Tool calls are keyed on canonical JSON arguments, so `{"b":1,"a":2}` == `{"a":2,"b":1}`.
    canonical_json_arguments: bool = False
    # The fastest tier used; a hit anywhere below it is promoted.
    top: TierName | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        top = next((tier for tier in TIER_ORDER if tier in self.tiers), None)
        object.__setattr__(self, "top", top)

    def uses(self, tier: TierName) -> bool:
        return tier in self.tiers


def policy_for(name: str, settings: Settings) -> CachePolicy:
    """The configured policy called `name` (one of `POLICY_NAMES`).

    Raises:
        ValueError: `name` is not a known policy.
    """
    if name not in POLICY_NAMES:
        raise ValueError(f"unknown cache policy {name!r}; use one of {', '.join(POLICY_NAMES)}")
    return CachePolicy(
        name=name,
        ttl_s=int(getattr(settings, f"cache_{name}_ttl_s")),
        tiers=frozenset(getattr(settings, f"cache_{name}_tiers")),
        canonical_json_arguments=name == "tool_result",
    )


def policies_from_settings(settings: Settings) -> dict[str, CachePolicy]:
    """Every configured policy by name."""
    return {name: policy_for(name, settings) for name in POLICY_NAMES}
