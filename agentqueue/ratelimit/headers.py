"""What a provider's reply says about its limits: `x-ratelimit-*` (OpenAI) and
`anthropic-ratelimit-*` headers, and how long a 429 asks to wait."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from agentqueue.providers.backoff import parse_retry_after

_DURATION = re.compile(
    r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?"
    r"(?:(\d+(?:\.\d+)?)ms)?$"
)


@dataclass(frozen=True, slots=True)
class ObservedLimits:
    """Limits a reply announced (None where it said nothing), and a wait it asked for."""

    rpm: int | None = None
    tpm: int | None = None
    wait_s: float | None = None


def _int(headers: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        value = headers.get(name)
        if value is not None:
            try:
                number = int(float(value))
            except ValueError:
                continue
            if number > 0:
                return number
    return None


def parse_duration(value: str | None) -> float | None:
    """OpenAI's reset durations (`1s`, `6m0s`, `20ms`, `1h2m`) or plain seconds."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    match = _DURATION.match(value)
    if match is None or not any(match.groups()):
        return None
    hours, minutes, seconds, millis = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def observe(status: int, headers: Mapping[str, str]) -> ObservedLimits:
    """Limits and wait from one reply's headers (lower-case names)."""
    rpm = _int(headers, "x-ratelimit-limit-requests", "anthropic-ratelimit-requests-limit")
    tpm = _int(
        headers,
        "x-ratelimit-limit-tokens",
        "anthropic-ratelimit-tokens-limit",
        "anthropic-ratelimit-input-tokens-limit",
    )
    wait_s: float | None = None
    if status == 429:
        millis = headers.get("retry-after-ms")
        try:
            wait_s = float(millis) / 1000 if millis is not None else None
        except ValueError:
            wait_s = None
        if wait_s is None:
            wait_s = parse_retry_after(headers.get("retry-after"))
        if wait_s is None:
            wait_s = parse_duration(headers.get("x-ratelimit-reset-requests"))
    return ObservedLimits(rpm, tpm, wait_s)
