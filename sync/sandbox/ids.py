"""Salesforce record Ids: 15 case-sensitive characters plus a 3-character checksum.

An Id is the object's 3-character key prefix, a 2-character instance code, one reserved
character and a 9-character base-62 counter. The 18-character form appends one letter per
5-character chunk that encodes which characters of the chunk are upper-case, so that the
Id survives case-insensitive systems (spreadsheets, SOQL's own case folding of strings).
"""

from __future__ import annotations

import re
import threading

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
INSTANCE_CODE = "5g"
RESERVED = "0"
_COUNTER_WIDTH = 9
_COUNTER_MAX = 62**_COUNTER_WIDTH - 1
_ID15 = re.compile(r"^[0-9A-Za-z]{15}$")
_ID18 = re.compile(r"^[0-9A-Za-z]{15}[A-Z0-5]{3}$")


def checksum(id15: str) -> str:
    """The 3-character case-checksum suffix of a 15-character Id."""
    out = []
    for chunk in range(3):
        bits = 0
        for pos in range(5):
            if "A" <= id15[chunk * 5 + pos] <= "Z":
                bits |= 1 << pos
        out.append(_CHECKSUM_ALPHABET[bits])
    return "".join(out)


def to_18(id15: str) -> str:
    """The 18-character form of a 15-character Id."""
    return id15 + checksum(id15)


def normalize(value: str) -> str | None:
    """The canonical 18-character Id for ``value`` (15 or 18 characters), or None.

    A 18-character value whose suffix does not match its first 15 characters (taking
    letter case into account) is not an Id. A suffix in the wrong letter case is accepted
    and corrected, as Salesforce does.
    """
    if len(value) == 15 and _ID15.match(value):
        return to_18(value)
    if len(value) == 18 and _ID15.match(value[:15]):
        expected = checksum(value[:15])
        if value[15:].upper() == expected:
            return value[:15] + expected
    return None


def is_valid(value: str) -> bool:
    """True when ``value`` is a well-formed 18-character Id with a correct checksum."""
    return bool(_ID18.match(value)) and checksum(value[:15]) == value[15:]


def encode_counter(number: int) -> str:
    """``number`` as 9 base-62 digits (the order of the text is the order of numbers)."""
    if not 0 <= number <= _COUNTER_MAX:
        raise ValueError(f"Id counter out of range: {number}")
    digits = []
    for _ in range(_COUNTER_WIDTH):
        number, rem = divmod(number, 62)
        digits.append(BASE62[rem])
    return "".join(reversed(digits))


def decode_counter(text: str) -> int:
    """The number encoded by :func:`encode_counter`."""
    number = 0
    for char in text:
        number = number * 62 + BASE62.index(char)
    return number


def make_id(key_prefix: str, number: int) -> str:
    """The 18-character Id number ``number`` of the object with ``key_prefix``."""
    return to_18(key_prefix + INSTANCE_CODE + RESERVED + encode_counter(number))


def counter_of(record_id: str) -> int:
    """The counter an Id made by :func:`make_id` was built from."""
    return decode_counter(record_id[6:15])


class IdAllocator:
    """Hands out fresh Ids per key prefix; thread-safe.

    Counters start after the highest Id already stored (see :meth:`observe`), so a
    sandbox that reopens its database file never reuses an Id.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[str, int] = {}

    def observe(self, key_prefix: str, highest: int) -> None:
        """Make sure Ids of ``key_prefix`` continue after counter ``highest``."""
        with self._lock:
            self._next[key_prefix] = max(self._next.get(key_prefix, 1), highest + 1)

    def new(self, key_prefix: str) -> str:
        """A fresh Id for the object with ``key_prefix``."""
        return self.block(key_prefix, 1)[0]

    def block(self, key_prefix: str, count: int) -> list[str]:
        """``count`` consecutive fresh Ids (bulk seeding)."""
        with self._lock:
            start = self._next.get(key_prefix, 1)
            self._next[key_prefix] = start + count
        head = key_prefix + INSTANCE_CODE + RESERVED
        return [to_18(head + encode_counter(n)) for n in range(start, start + count)]

    def state(self) -> dict[str, int]:
        """A copy of the counters (to restore a snapshot)."""
        with self._lock:
            return dict(self._next)

    def restore(self, state: dict[str, int]) -> None:
        """Put back counters taken with :meth:`state`."""
        with self._lock:
            self._next = dict(state)
