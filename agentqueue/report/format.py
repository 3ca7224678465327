"""Numbers as people read them: shares and durations (money: `agentqueue.money`)."""

from __future__ import annotations


def share(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"


def seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"
