"""Configured RPM/TPM limits (`AGENTQUEUE_RATE_LIMITS_FILE`, TOML or JSON).

TOML::

    [[limits]]
    provider = "openai"
    model = "gpt-4o-mini"   # "*" for every model of the provider
    rpm = 1200
    tpm = 2000000
    key_id = "3f2a9c1b"     # optional: only for the API key with this id (see `key_id`)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, ValidationError

from agentqueue.budget.budget_files import read_table_file, refused_file
from agentqueue.strict import StrictModel


class _Limit(StrictModel):
    provider: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=128)
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    key_id: str | None = Field(default=None, min_length=1, max_length=64)


class _LimitsFile(StrictModel):
    limits: list[_Limit]
    comment: str | None = Field(default=None, alias="_comment")


@dataclass(frozen=True, slots=True)
class ModelLimits:
    """Requests and tokens per minute; None where nothing is known."""

    rpm: int | None = None
    tpm: int | None = None

    @property
    def known(self) -> bool:
        return self.rpm is not None or self.tpm is not None


def key_id(api_key: str | None) -> str:
    """A short, non-reversible id of an API key: limits are per key, logs never see the key."""
    if not api_key:
        return "nokey"
    return hashlib.sha256(api_key.encode()).hexdigest()[:8]


class RateLimitTable:
    """Looks up the configured limits of `(provider, model, key_id)`, most specific first."""

    def __init__(self, entries: list[_Limit] | None = None) -> None:
        self._entries = list(entries or [])

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, provider: str, model: str, key: str) -> ModelLimits:
        best: tuple[int, _Limit] | None = None
        for entry in self._entries:
            if entry.provider != provider or entry.model not in (model, "*"):
                continue
            if entry.key_id not in (None, key):
                continue
            rank = (entry.model == model) * 2 + (entry.key_id is not None)
            if best is None or rank > best[0]:
                best = (rank, entry)
        if best is None:
            return ModelLimits()
        return ModelLimits(best[1].rpm, best[1].tpm)


def load_rate_limits(path: Path | None) -> RateLimitTable:
    """The table of `path`, or an empty one (limits then come from response headers only).

    Raises:
        InvalidBudgetFile: the file is missing, unparsable or has a bad entry.
    """
    if path is None:
        return RateLimitTable()
    setting = "AGENTQUEUE_RATE_LIMITS_FILE"
    try:
        parsed = _LimitsFile.model_validate(read_table_file(path, setting=setting))
    except ValidationError as exc:
        raise refused_file(path, setting, exc) from None
    return RateLimitTable(list(parsed.limits))
