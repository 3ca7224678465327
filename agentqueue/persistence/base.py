"""Declarative base and the column types shared by every table."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any

from sqlalchemy import DateTime, Dialect, MetaData, Numeric, String
from sqlalchemy.orm import DeclarativeBase, mapped_column
from sqlalchemy.types import TypeDecorator

from agentqueue.money import LARGEST_LEDGER_USD, LEDGER_DECIMALS, MONEY_QUANTUM


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite hands back naive ones otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class MoneyType(TypeDecorator[Decimal]):
    """USD to 10 decimal places, exact on every backend; never float.

    PostgreSQL keeps NUMERIC(28, 10) as it is. SQLite has no exact decimal type (SQLAlchemy
    would hand it floats), so there the same column holds an integer count of 10^-10 USD:
    SQL sums and `+`/`-` on it stay exact, and amounts read back as Decimals with 10 places,
    as PostgreSQL returns them. Amounts round half away from zero to 10 places on both."""

    impl = Numeric(28, LEDGER_DECIMALS)
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        return _to_units

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        return _from_units


def _to_units(value: Decimal | int | None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, Decimal | int) or isinstance(value, bool):
        raise TypeError(f"money must be a Decimal, got {type(value).__name__}")
    try:  # rounded once, as PostgreSQL rounds to the column's scale
        amount = Decimal(value).quantize(MONEY_QUANTUM, rounding=ROUND_HALF_UP)
    except InvalidOperation:  # more digits than a Decimal's 28
        amount = None
    if amount is None or abs(amount) > LARGEST_LEDGER_USD:
        raise ValueError(f"{value} USD is beyond the ledger's largest amount, {LARGEST_LEDGER_USD}")
    return int(amount.scaleb(LEDGER_DECIMALS))


def _from_units(value: int | float | str | None) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float):  # only an overflowed sum: SQLite turns it into a float
        raise ValueError(f"a ledger amount overflowed on SQLite ({value!r} units of 10^-10 USD)")
    return Decimal(value).scaleb(-LEDGER_DECIMALS).quantize(MONEY_QUANTUM)


# Money: 18 digits before the point (on SQLite up to LARGEST_LEDGER_USD), 10 after.
Money = Annotated[Decimal, mapped_column(MoneyType())]
Timestamp = Annotated[datetime, mapped_column(UTCDateTime())]
ShortText = Annotated[str, mapped_column(String(128))]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {Decimal: MoneyType(), datetime: UTCDateTime()}
