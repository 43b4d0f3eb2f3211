"""SOQL queries and their locators (``nextRecordsUrl`` pages).

A query runs once: it fixes the matching rows (their row numbers, in result order) and
answers the first page. The rest of the rows wait in a locator that any client may page
through later, concurrently with other clients and other locators; each page reads the
records' current values by row number. Locators expire after 15 minutes without use, and
the cache holds a bounded number of row numbers in total (the oldest locators go first),
so abandoned cursors cannot grow memory without limit.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sync.sandbox import ids
from sync.sandbox.errors import ApiError
from sync.sandbox.schema import FieldDef, ObjectDef, Schema
from sync.sandbox.selection import read_rows
from sync.sandbox.soql import SoqlError, compile_select, parse
from sync.sandbox.soql.compiler import ParentColumn
from sync.sandbox.store import ROW_COLUMN, Store
from sync.sandbox.values import NUMBER_TYPES, soql_value_from_sqlite

DEFAULT_BATCH = 2000
MIN_BATCH = 200
LOCATOR_PREFIX = "01g"
_CONVERTED_TYPES = NUMBER_TYPES | {"boolean"}  # every other type is stored as its JSON text
MAX_SOQL_LENGTH = 100_000  # Salesforce's limit on the length of one SOQL statement
_TOO_COMPLICATED = (
    "Query is either selecting too many fields or the filter conditions are too complicated."
)
# SQLite's own limits, which a long enough SOQL filter can reach (each AND is one level of
# the expression tree): the query is answered as Salesforce answers an overly complex one.
_SQLITE_LIMITS = ("too large", "too many", "too deep", "stack overflow")


def _too_complicated(exc: Exception) -> bool:
    if isinstance(exc, OverflowError):  # a number literal beyond 64-bit integers
        return True
    return any(marker in str(exc).lower() for marker in _SQLITE_LIMITS)


def batch_size_from_header(value: str | None) -> int:
    """The page size asked for by ``Sforce-Query-Options: batchSize=N``.

    Salesforce treats the size as a hint: values outside 200..2000 are brought into that
    range and a malformed header is ignored.
    """
    if not value:
        return DEFAULT_BATCH
    for part in value.split(","):
        key, _, raw = part.partition("=")
        if key.strip().lower() == "batchsize":
            try:
                return max(MIN_BATCH, min(DEFAULT_BATCH, int(raw.strip())))
            except ValueError:
                return DEFAULT_BATCH
    return DEFAULT_BATCH


@dataclass
class Locator:
    """The rest of one query's result."""

    obj: ObjectDef
    fields: list[FieldDef | ParentColumn]  # the SELECT list
    rows: array[int]
    batch: int
    include_deleted: bool
    last_used: float = field(default_factory=time.monotonic)


class LocatorCache:
    """Open query locators, shared by every client; thread-safe and bounded.

    Args:
        ttl: seconds a locator lives after its last use (Salesforce: 15 minutes).
        max_rows: row numbers held across all locators; beyond it the least recently
            used locators are dropped.
    """

    def __init__(self, ttl: float = 900.0, max_rows: int = 5_000_000) -> None:
        self.ttl = ttl
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._items: OrderedDict[str, Locator] = OrderedDict()
        self._rows = 0
        self._ids = ids.IdAllocator()

    def add(self, locator: Locator) -> str:
        """Keep ``locator``; returns its Id."""
        locator_id = self._ids.new(LOCATOR_PREFIX)
        with self._lock:
            self._expire(time.monotonic())
            self._items[locator_id] = locator
            self._rows += len(locator.rows)
            while self._rows > self.max_rows and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self._rows -= len(dropped.rows)
        return locator_id

    def get(self, locator_id: str) -> Locator | None:
        """The live locator ``locator_id`` (its lifetime restarts), or None."""
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            locator = self._items.get(locator_id)
            if locator is not None:
                locator.last_used = now
                self._items.move_to_end(locator_id)
            return locator

    def clear(self) -> None:
        """Drop every locator."""
        with self._lock:
            self._items.clear()
            self._rows = 0

    def __len__(self) -> int:
        return len(self._items)

    def _expire(self, now: float) -> None:
        while self._items:
            locator_id, oldest = next(iter(self._items.items()))
            if now - oldest.last_used <= self.ttl:
                break
            del self._items[locator_id]
            self._rows -= len(oldest.rows)


class QueryService:
    """Runs SOQL against the store and serves locator pages."""

    def __init__(self, store: Store, schema: Schema, locators: LocatorCache) -> None:
        self.store = store
        self.schema = schema
        self.locators = locators

    def query(
        self, text: str, *, include_deleted: bool, batch: int, version: str
    ) -> dict[str, Any]:
        """The first page of ``text``'s result.

        Raises:
            ApiError: 400 MALFORMED_QUERY, INVALID_FIELD or INVALID_TYPE.
        """
        if len(text) > MAX_SOQL_LENGTH:
            raise ApiError(
                400,
                "MALFORMED_QUERY",
                f"SOQL statements cannot be longer than {MAX_SOQL_LENGTH:,} characters",
            )
        try:
            compiled = compile_select(parse(text), self.schema, include_deleted=include_deleted)
        except SoqlError as exc:
            raise ApiError(400, exc.error_code, exc.message) from None
        sql, params = compiled.sql(ROW_COLUMN)
        with self.store.lock:
            self.store.maybe_purge()
            try:
                rows = self.store.select_rows(sql, params)
            except (sqlite3.OperationalError, OverflowError) as exc:
                if not _too_complicated(exc):
                    raise
                raise ApiError(400, "QUERY_TOO_COMPLICATED", _TOO_COMPLICATED) from None
            numbers = array("q", (row[0] for row in rows))
        if compiled.count_only:
            return {"totalSize": len(numbers), "done": True, "records": []}
        locator = Locator(compiled.object, list(compiled.columns), numbers, batch, include_deleted)
        return self._page(locator, None, 0, version)

    def more(self, locator_ref: str, version: str) -> dict[str, Any]:
        """The page of locator ``locator_ref`` (``01g...-OFFSET``).

        Raises:
            ApiError: 400 INVALID_QUERY_LOCATOR for an unknown, expired or out-of-range
                locator.
        """
        locator_id, _, raw_offset = locator_ref.partition("-")
        locator = self.locators.get(locator_id)
        try:
            offset = int(raw_offset)
        except ValueError:
            offset = -1
        if locator is None or not 0 <= offset <= len(locator.rows):
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(locator, locator_id, offset, version)

    def _page(
        self, locator: Locator, locator_id: str | None, offset: int, version: str
    ) -> dict[str, Any]:
        total = len(locator.rows)
        end = min(offset + locator.batch, total)
        if any(isinstance(f, ParentColumn) for f in locator.fields):
            records = self._records_with_parents(locator, offset, end, version)
        else:
            records = self._records(locator, offset, end, version)
        page: dict[str, Any] = {"totalSize": total, "done": end >= total}
        if end < total:
            if locator_id is None:
                locator_id = self.locators.add(locator)
            endpoint = "queryAll" if locator.include_deleted else "query"
            page["nextRecordsUrl"] = f"/services/data/v{version}/{endpoint}/{locator_id}-{end}"
        page["records"] = records
        return page

    def _records(
        self, locator: Locator, offset: int, end: int, version: str
    ) -> list[dict[str, Any]]:
        obj = locator.obj
        fields = [f for f in locator.fields if isinstance(f, FieldDef)]
        columns = ["Id", *(f.name for f in fields)]
        rows = self.store.rows_by_number(obj, columns, locator.rows[offset:end])
        names = ("attributes", *(f.name for f in fields))
        # stored text is already the JSON value; only numbers and booleans need converting
        converted = [(i + 1, f) for i, f in enumerate(fields) if f.type in _CONVERTED_TYPES]
        url_prefix = f"/services/data/v{version}/sobjects/{obj.name}/"
        kind = obj.name
        records = []
        for row in rows:
            record = dict(
                zip(names, ({"type": kind, "url": url_prefix + row[0]}, *row[1:]), strict=True)
            )
            for i, f in converted:
                name = names[i]
                record[name] = soql_value_from_sqlite(f, record[name])
            records.append(record)
        return records

    def _records_with_parents(
        self, locator: Locator, offset: int, end: int, version: str
    ) -> list[dict[str, Any]]:
        """Records whose SELECT list has parent fields: each parent is a nested record."""
        obj = locator.obj
        base = f"/services/data/v{version}/sobjects/"
        records = []
        for row in read_rows(self.store, obj, locator.fields, locator.rows[offset:end]):
            record: dict[str, Any] = {
                "attributes": {"type": obj.name, "url": base + obj.name + "/" + row.values[0]}
            }
            for column, value in zip(locator.fields, row.values[1:], strict=True):
                if isinstance(column, FieldDef):
                    record[column.name] = soql_value_from_sqlite(column, value)
                    continue
                parent_id = row.parents.get(column.relationship)
                if parent_id is None:
                    record[column.relationship] = None
                    continue
                nested = record.get(column.relationship)
                if nested is None:
                    parent = column.parent.name
                    url = base + parent + "/" + parent_id
                    nested = {"attributes": {"type": parent, "url": url}}
                    record[column.relationship] = nested
                nested[column.field.name] = soql_value_from_sqlite(column.field, value)
            records.append(record)
        return records
