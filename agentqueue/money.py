"""Money as text: `format_usd` for people, `exact_usd` for JSON; every command uses these two.

Amounts come back from SQL with the column's scale (`Decimal('0E-10')`,
`Decimal('0.0029290500')`), and `str()` of such a Decimal is exponent notation or a tail of
zeros; neither is what a person or a JSON reader should see.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

# The ledger keeps every amount to 10 decimal places on both databases (PostgreSQL's
# NUMERIC(28, 10); on SQLite a 64-bit count of 10^-10 USD, exact too), and no amount larger
# than a SQLite integer holds: budgets are refused above it.
LEDGER_DECIMALS = 10
MONEY_QUANTUM = Decimal(1).scaleb(-LEDGER_DECIMALS)  # 0.0000000001
LARGEST_LEDGER_USD = Decimal(2**63 - 1).scaleb(-LEDGER_DECIMALS)  # $922,337,203.6854775807

SIGNIFICANT_DIGITS = 2  # $0.0029, not $0.00292905: enough to tell amounts apart and from zero
MIN_DECIMALS = 2  # cents, always: $3.00, $0.12


def _decimal(amount: Decimal | str | int) -> Decimal:
    return amount if isinstance(amount, Decimal) else Decimal(str(amount))


def format_usd(amount: Decimal | str | int) -> str:
    """`$1,234.50`, `$0.12`, `$0.0029`, `-$0.40`, `$0.00`: at least cents, and as many more
    decimals as it takes to show two significant digits of a sub-cent amount."""
    value = _decimal(amount)
    if not value.is_finite():
        return f"${value}"
    if value.is_zero():
        return "$0.00"
    magnitude = abs(value)
    # adjusted() is the exponent of the leading digit: -3 for 0.0029, 1 for 12.5.
    decimals = max(MIN_DECIMALS, SIGNIFICANT_DIGITS - 1 - magnitude.adjusted())
    rounded = magnitude.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    text = f"{rounded:,f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(MIN_DECIMALS, "0")
    return f"{'-' if value < 0 else ''}${whole}.{fraction}"


def exact_usd(amount: Decimal | str | int) -> str:
    """The exact amount in plain decimal notation for JSON: `0`, `0.00292905`, `1200`."""
    value = _decimal(amount)
    if not value.is_finite():
        return str(value)
    if value.is_zero():
        return "0"
    return f"{value.normalize():f}"
