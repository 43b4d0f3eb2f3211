"""Column types that behave the same on PostgreSQL and SQLite."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Numeric
from sqlalchemy.types import TypeDecorator, TypeEngine

UTC = dt.UTC


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite has no time zone support, so values are stored there as naive UTC and come
    back aware; PostgreSQL stores ``timestamptz``. Naive input is refused rather than
    guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: billing-sync stores UTC only")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class ScaledDecimal(TypeDecorator[Decimal]):
    """An exact decimal with a fixed scale.

    PostgreSQL stores ``numeric(precision, scale)``. SQLite has no decimal type (its
    NUMERIC is a float), so there the value is kept as a scaled integer: exact, and
    still sortable by amount.
    """

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int = 18, scale: int = 2) -> None:
        super().__init__()
        self.precision = precision
        self.scale = scale
        self._factor = Decimal(10) ** scale
        self._quantum = Decimal(1).scaleb(-scale)

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Decimal | float | int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        quantized = Decimal(str(value)).quantize(self._quantum)
        if dialect.name == "sqlite":
            return int(quantized * self._factor)
        return quantized

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return (Decimal(int(value)) / self._factor).quantize(self._quantum)
        return Decimal(value).quantize(self._quantum)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.precision}, {self.scale})"


class BindForm(StrEnum):
    """The form in which a column's values are handed to the database driver."""

    VALUE = "value"
    """The Python value itself (the driver adapts it)."""
    UTC_TEXT = "utc_text"
    """An aware datetime as naive UTC text, ``YYYY-MM-DD HH:MM:SS.ffffff`` (SQLite)."""
    DATE_TEXT = "date_text"
    """A date as ``YYYY-MM-DD`` text (SQLite)."""
    SCALED_INT = "scaled_int"
    """A decimal as an integer count of ``10**-scale`` (:class:`ScaledDecimal` on SQLite)."""
    NUMERIC = "numeric"
    """A decimal for a ``numeric(precision, scale)`` column (PostgreSQL): a Decimal, or a
    number whose text the server reads exactly at the column's scale."""


@dataclass(frozen=True)
class Bind:
    """How one column's values reach the driver: what a bulk write binds.

    The same storage as the column type's own SQLAlchemy bind processing, computed
    without it, so that pages of rows can go straight to the driver.

    Attributes:
        form: the driver-side form.
        scale: digits after the point, for decimal forms.
    """

    form: BindForm = BindForm.VALUE
    scale: int = 0

    def adapt(self, value: Any) -> Any:
        """``value`` (as the column type takes it) in this form; None stays None.

        Raises:
            ValueError: a naive datetime (billing-sync stores UTC only).
        """
        if value is None:
            return None
        form = self.form
        if form is BindForm.UTC_TEXT:
            return utc_text(value)
        if form is BindForm.DATE_TEXT:
            return value.isoformat()
        if form is BindForm.SCALED_INT:
            if type(value) is not Decimal:
                value = Decimal(str(value))
            return int(value.quantize(Decimal(1).scaleb(-self.scale)).scaleb(self.scale))
        return value


VALUE = Bind()


def utc_text(value: dt.datetime) -> str:
    """:class:`UTCDateTime`'s SQLite storage of an aware datetime (naive UTC text).

    Raises:
        ValueError: ``value`` is naive.
    """
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: billing-sync stores UTC only")
        value = value.astimezone(UTC)
    # "YYYY-MM-DD HH:MM:SS.ffffff+00:00" without the offset
    return value.isoformat(" ", "microseconds")[:26]
