"""The one backoff formula: exponential from `base_s`, capped at `max_s`, optionally jittered.

Provider calls, task retries, ledger transaction conflicts and the cache listener's reconnects
all wait this way; only their constants differ.
"""

from __future__ import annotations

import math
import random


def backoff_s(
    attempt: int,
    *,
    base_s: float,
    max_s: float = math.inf,
    jitter: bool = False,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry `attempt` (1 for the first retry): `base_s * 2**(attempt-1)`
    capped at `max_s`; with `jitter`, drawn uniformly below that ("full jitter", so clients
    that failed together do not retry together)."""
    ceiling = min(max_s, base_s * 2 ** max(0, attempt - 1))
    if not jitter:
        return ceiling
    return (rng or random).uniform(0.0, ceiling)
