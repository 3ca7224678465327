"""How long the LLM test server takes per request: fixed plus jitter, or a percentile table."""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class LatencyModel:
    """`latency_ms` ± uniform `jitter_ms`, or, when `percentiles` is given, a draw from the
    piecewise-linear distribution through those (percentile, ms) points, e.g.
    ((50, 200), (90, 400), (99, 1200))."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    percentiles: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        points = self.percentiles
        if any(not 0 <= p <= 100 or ms < 0 for p, ms in points):
            raise ValueError("percentiles must be in 0..100 and latencies not negative")
        pairs = list(itertools.pairwise(points))
        if any(p1 <= p0 or ms1 < ms0 for (p0, ms0), (p1, ms1) in pairs):
            raise ValueError("percentile points must ascend in both percentile and latency")

    @classmethod
    def parse_percentiles(cls, text: str) -> tuple[tuple[float, float], ...]:
        """`"50:200,90:400,99:1200"` as ((50, 200), (90, 400), (99, 1200))."""
        points = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            pct, _, ms = part.partition(":")
            points.append((float(pct), float(ms)))
        return tuple(points)

    def sample_s(self, rng: random.Random) -> float:
        """One latency draw, in seconds."""
        if self.percentiles:
            return self._from_percentiles(rng.uniform(0.0, 100.0)) / 1000
        jitter = rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        return max(0.0, self.latency_ms + jitter) / 1000

    def _from_percentiles(self, u: float) -> float:
        pcts = [p for p, _ in self.percentiles]
        i = bisect.bisect_left(pcts, u)
        if i == 0:
            return self.percentiles[0][1]
        if i == len(pcts):
            return self.percentiles[-1][1]
        (p0, ms0), (p1, ms1) = self.percentiles[i - 1], self.percentiles[i]
        return ms0 + (ms1 - ms0) * (u - p0) / (p1 - p0)
