"""Numbers in the report read as people write them."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from agentqueue.money import format_usd
from agentqueue.report.data import InvalidSince, parse_since


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("0E-10", "$0.00"),
        ("0.0029290500", "$0.0029"),
        ("0.01", "$0.01"),
        ("0.5", "$0.50"),
        ("1234.5678", "$1,234.57"),
        ("0.0000001234", "$0.00000012"),
        ("-0.25", "-$0.25"),
    ],
)
def test_dollars_have_no_exponent_and_enough_digits(amount: str, shown: str) -> None:
    assert format_usd(Decimal(amount)) == shown


def test_since_takes_hours_days_and_weeks() -> None:
    assert parse_since("24h") == timedelta(hours=24)
    assert parse_since("7d") == timedelta(days=7)
    assert parse_since("2w") == timedelta(weeks=2)
    for bad in ("", "7", "0d", "-1d", "7 days"):
        with pytest.raises(InvalidSince):
            parse_since(bad)
