"""The syntax tree of a SOQL SELECT (names as written; compile_select resolves them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True, slots=True)
class Name:
    """A field or object name as written, with its position in the query text."""

    text: str
    pos: int


@dataclass(frozen=True, slots=True)
class Literal:
    """A value in a condition.

    ``kind`` is one of ``string``, ``number``, ``boolean``, ``null``, ``date``,
    ``datetime`` or ``date_literal`` (TODAY, LAST_N_DAYS:n, ...). ``value`` holds the
    unescaped string, the number text, the bool, the date/datetime text, or for a date
    literal its upper-case name; ``n`` is the N of ``LAST_N_DAYS:n``-like literals.
    ``like`` is a string's SQLite LIKE pattern and ``like_only`` whether it used an
    escape that only LIKE allows.
    """

    kind: str
    value: object
    text: str
    pos: int
    n: int | None = None
    like: str = ""
    like_only: bool = False


@dataclass(frozen=True, slots=True)
class Comparison:
    """``field op value``; op is one of = != < > <= >= LIKE IN NOT IN (``<>`` reads ``!=``)."""

    field: Name
    op: str
    value: Literal | tuple[Literal, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Not:
    """``NOT operand``."""

    operand: Condition


@dataclass(frozen=True, slots=True)
class And:
    """``a AND b AND ...``."""

    operands: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """``a OR b OR ...``."""

    operands: tuple[Condition, ...]


Condition = Union[Comparison, Not, And, Or]  # noqa: UP007  (a runtime alias)


@dataclass(frozen=True, slots=True)
class OrderItem:
    """One ORDER BY term; ``nulls_first`` None means the default for the direction."""

    field: Name
    descending: bool = False
    nulls_first: bool | None = None


@dataclass(frozen=True, slots=True)
class SelectQuery:
    """A parsed ``SELECT ... FROM ...`` with its source text (for error positions)."""

    text: str
    fields: tuple[Name, ...]
    count_only: bool
    object: Name
    where: Condition | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int | None = None
