"""Money as text: people get cents and two significant digits, JSON gets the exact amount."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agentqueue.jobs import JobResult
from agentqueue.money import exact_usd, format_usd


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("0E-10", "$0.00"),  # what a Numeric(…, 10) zero reads back as
        ("0.0029290500", "$0.0029"),
        ("0.000435", "$0.00044"),
        ("0.00000012345", "$0.00000012"),
        ("0.0156", "$0.016"),
        ("0.123", "$0.12"),
        ("1.2345", "$1.23"),
        ("25", "$25.00"),
        ("1234.5", "$1,234.50"),
        ("1E+3", "$1,000.00"),
        ("-0.4", "-$0.40"),
        ("-0.0029", "-$0.0029"),
    ],
)
def test_amounts_for_people(amount: str, shown: str) -> None:
    assert format_usd(Decimal(amount)) == shown


@pytest.mark.parametrize(
    ("amount", "exact"),
    [
        ("0E-10", "0"),
        ("0.0029290500", "0.00292905"),
        ("1E+3", "1000"),
        ("-0.40", "-0.4"),
        ("12.3456789012", "12.3456789012"),
    ],
)
def test_exact_amounts_for_json(amount: str, exact: str) -> None:
    assert exact_usd(Decimal(amount)) == exact
    assert Decimal(exact) == Decimal(amount)  # nothing rounded away


def test_a_job_result_never_carries_exponent_notation() -> None:
    # Given a cost read back from SQL as 0E-10, Then the result (and its JSON) says "0".
    result = JobResult(job_id="j", status="succeeded", cost_usd=str(Decimal("0E-10")))
    assert result.cost_usd == "0" and '"cost_usd":"0"' in result.model_dump_json()
    with pytest.raises(ValueError, match="not a decimal"):
        JobResult(job_id="j", status="succeeded", cost_usd="lots")
