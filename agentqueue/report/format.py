"""Numbers as people read them: dollars without exponents, shares, durations."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def usd(amount: Decimal | float) -> str:
    """`$12.34`; below a dollar two significant digits (`$0.0029`); never `0E-10`."""
    value = amount if isinstance(amount, Decimal) else Decimal(repr(float(amount)))
    if value == 0:
        return "$0.00"
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value >= 1 or value == value.quantize(Decimal("0.01")):
        return f"{sign}${value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,f}"
    places = max(2, 1 - value.adjusted())
    quantum = Decimal(1).scaleb(-places)
    return f"{sign}${value.quantize(quantum, rounding=ROUND_HALF_UP):f}"


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
