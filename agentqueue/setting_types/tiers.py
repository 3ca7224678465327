"""`AGENTQUEUE_CACHE_*_TIERS`: a comma list of cache tiers, `l1` (process memory), `l2` (Redis)
and `l3` (SQL), written without spaces (`l1,l2`), parsed to tier names in tier order."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_settings import NoDecode

TierName = Literal["l1", "l2", "l3"]
TIER_ORDER: tuple[TierName, ...] = ("l1", "l2", "l3")


def _parts(value: object) -> object:
    return value.split(",") if isinstance(value, str) else value


def _in_tier_order(tiers: tuple[TierName, ...]) -> tuple[TierName, ...]:
    return tuple(tier for tier in TIER_ORDER if tier in tiers)


CacheTiers = Annotated[
    tuple[TierName, ...],
    NoDecode,
    BeforeValidator(_parts),
    AfterValidator(_in_tier_order),
    Field(min_length=1),
]
"""The settings type: `l1,l2` text (or tier names), held in tier order, each once."""
