"""The sandbox's records: one SQLite database, one table per object.

Each object's table is named exactly like the object and has one column per field (the
DDL and the value encodings are :mod:`sync.sandbox.tables` and :mod:`sync.sandbox.values`).
Query locators remember rows by ``rowid``; new rows get row numbers above every number
handed out since the process started, so a purged record's number is never reused while
a locator may still point at it.

All access goes through one connection guarded by one re-entrant lock; a unit of work is
``with store.transaction():`` (nested ones become savepoints, so a failing record inside
an all-or-none batch rolls back the whole batch and nothing else).
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sync.sandbox import deletes, ids
from sync.sandbox import events as cdc
from sync.sandbox.clock import ModstampClock, format_ms, parse_datetime, to_ms
from sync.sandbox.errors import ApiError, entity_deleted, not_found
from sync.sandbox.schema import FieldDef, ObjectDef, Schema
from sync.sandbox.tables import column_type, create_index_sql, create_table_sql
from sync.sandbox.validation import (
    check_required,
    check_unique,
    convert,
    quote,
    row_state,
    value_error_code,
)
from sync.sandbox.values import FieldValueError, sqlite_value_from_json

ROW_COLUMN = "rowid"
COMMIT_USER = ids.make_id("005", 1)  # the sandbox's one user (auth.USER_ID)

CHANGE_ORIGIN: ContextVar[str] = ContextVar("CHANGE_ORIGIN", default="com/salesforce/api/rest/59.0")
"""``changeOrigin`` of the events a write emits; the API surface sets it per request."""
_PURGE_EVERY = 1.0  # seconds between checks for deleted records past retention

Record = dict[str, Any]


class MultipleMatches(Exception):
    """An external Id value matches several records (upsert answers 300)."""

    def __init__(self, object_name: str, record_ids: list[str]) -> None:
        super().__init__(f"{len(record_ids)} {object_name} records match")
        self.object_name = object_name
        self.record_ids = record_ids


@dataclass(frozen=True)
class ValidationRule:
    """A validation rule of the org: writing ``equals`` to ``field`` of ``object`` fails.

    Salesforce answers such a write with 400 FIELD_CUSTOM_VALIDATION_EXCEPTION and the
    rule's message; the sandbox's rules are set by a test hook.
    """

    object: str
    field: str
    equals: Any
    message: str

    def check(self, obj: ObjectDef, values: dict[str, Any]) -> None:
        """Raise the rule's error when ``values`` written to ``obj`` break it."""
        if obj.name.lower() != self.object.lower():
            return
        for key, value in values.items():
            if key.lower() == self.field.lower() and value == self.equals:
                raise ApiError(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", self.message, [key])


@dataclass(frozen=True)
class WriteResult:
    """What a create, update or upsert did."""

    id: str
    created: bool


class Store:
    """The sandbox's database: tables per object, transactions, validated writes.

    Args:
        schema: the objects and fields.
        db_path: SQLite file to persist to; None keeps everything in memory.
        clock: the modstamp clock (tests pass one with a frozen ``now``).
        retention: seconds a deleted record stays queryable with queryAll before purge.
    """

    def __init__(
        self,
        schema: Schema,
        *,
        db_path: str | None = None,
        clock: ModstampClock | None = None,
        retention: float = 15 * 86400.0,
        event_retention: float = cdc.EVENT_RETENTION,
        cdc_entities: Sequence[str] | None = None,
    ) -> None:
        self.schema = schema
        self.db_path = db_path
        self.clock = clock or ModstampClock()
        self.retention = retention
        self.validation_rules: list[ValidationRule] = []
        self.ids = ids.IdAllocator()
        self.lock = threading.RLock()
        self._depth = 0
        self._last_purge = 0.0
        self._snapshot: tuple[sqlite3.Connection, dict[str, int]] | None = None
        self.conn = sqlite3.connect(
            db_path or ":memory:", check_same_thread=False, isolation_level=None
        )
        if db_path:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
        self._next_row: dict[str, int] = {}
        # Change Data Capture: which entities emit events (None: all), the replay id
        # counter, the current transaction's key and sequence, and who is told of commits.
        self.event_retention = event_retention
        self.cdc_entities: set[str] | None = (
            None if cdc_entities is None else {e.lower() for e in cdc_entities}
        )
        self._replay_last = 0
        self._commit_number = 0
        self._txn_key = ""
        self._txn_seq = 0
        self._txn_emitted = False
        self.commit_listeners: list[Callable[[], None]] = []
        self.create_tables()
        self._observe_existing()

    # -- schema -------------------------------------------------------------------

    def create_tables(self) -> None:
        """Create missing tables, columns and indexes (idempotent)."""
        with self.lock:
            for obj in self.schema.objects.values():
                table = quote(obj.name)
                self.conn.execute(create_table_sql(obj))
                existing = {row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")}
                for f in obj.fields.values():
                    if f.name not in existing:
                        # a database file written before the field joined the schema
                        default = " DEFAULT 0" if f.type == "boolean" else ""
                        self.conn.execute(
                            f"ALTER TABLE {table} ADD COLUMN {quote(f.name)} "
                            f"{column_type(f)}{default}"
                        )
                for stmt in create_index_sql(obj):
                    self.conn.execute(stmt)
                # the purge finds deleted records past retention without a full scan
                self.conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {quote(obj.name + '__deleted')} "
                    f'ON {table} ("SystemModstamp") WHERE "IsDeleted" = 1'
                )
            cdc.create_table(self.conn)

    def _observe_rows(self) -> None:
        for obj in self.schema.objects.values():
            top = self.conn.execute(f"SELECT MAX(rowid) FROM {quote(obj.name)}").fetchone()[0]
            key = obj.name.lower()
            self._next_row[key] = max(self._next_row.get(key, 1), (top or 0) + 1)

    def _new_row_number(self, obj: ObjectDef) -> int:
        key = obj.name.lower()
        number = self._next_row.get(key, 1)
        self._next_row[key] = number + 1
        return number

    def _observe_existing(self) -> None:
        self._observe_rows()
        self._replay_last = max(self._replay_last, cdc.newest(self.conn))
        for obj in self.schema.objects.values():
            row = self.conn.execute(
                f'SELECT MAX("Id"), MAX("SystemModstamp") FROM {quote(obj.name)}'
            ).fetchone()
            if row[0]:
                self.ids.observe(obj.key_prefix, ids.counter_of(row[0]))
            if row[1]:
                stamp = parse_datetime(row[1])
                if stamp is not None:
                    self.clock.observe(to_ms(stamp))

    def close(self) -> None:
        """Close the database."""
        with self.lock:
            self.conn.close()
            if self._snapshot:
                self._snapshot[0].close()
                self._snapshot = None

    # -- transactions ----------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One unit of work: commits on success, rolls back on any exception.

        Nested calls (a record inside a batch, a subrequest inside ``/composite``) are
        savepoints of the enclosing transaction.
        """
        with self.lock:
            if self._depth == 0:
                self.conn.execute("BEGIN IMMEDIATE")
                self._depth = 1
                self._txn_key = str(uuid.uuid4())
                self._txn_seq = 0
                self._txn_emitted = False
                try:
                    yield self.conn
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
                else:
                    self.conn.execute("COMMIT")
                    if self._txn_emitted:
                        self._notify_commit()
                finally:
                    self._depth = 0
            else:
                name = f"sp{self._depth}"
                self.conn.execute(f"SAVEPOINT {name}")
                self._depth += 1
                try:
                    yield self.conn
                except BaseException:
                    self.conn.execute(f"ROLLBACK TO {name}")
                    self.conn.execute(f"RELEASE {name}")
                    raise
                else:
                    self.conn.execute(f"RELEASE {name}")
                finally:
                    self._depth -= 1

    # -- change data capture -----------------------------------------------------------

    def cdc_selected(self, object_name: str) -> bool:
        """True when changes of ``object_name`` emit change events."""
        return self.cdc_entities is None or object_name.lower() in self.cdc_entities

    def _next_replay_id(self) -> int:
        # Increasing but not contiguous, as Salesforce's: clients must never compute ids.
        self._replay_last += 1 + (self._replay_last % 3)
        return self._replay_last

    def _notify_commit(self) -> None:
        for listener in list(self.commit_listeners):
            listener()

    def emit(
        self,
        obj: ObjectDef,
        change_type: str,
        record_ids: Sequence[str],
        body: dict[str, Any] | None = None,
        changed_fields: Sequence[str] = (),
    ) -> int | None:
        """Write one change event in the current transaction; returns its replay id.

        Nothing is written for an entity not selected for Change Data Capture (None).
        Must run inside :meth:`transaction`: the event commits or rolls back with the
        change it describes.
        """
        if self._depth == 0:
            raise RuntimeError("change events are written inside a transaction")
        if not self.cdc_selected(obj.name):
            return None
        self._txn_seq += 1
        if self._txn_seq == 1:
            self._commit_number += 1
        now_ms = self.clock.wall_ms()
        header = {
            "entityName": obj.name,
            "recordIds": list(record_ids),
            "changeType": change_type,
            "changeOrigin": CHANGE_ORIGIN.get(),
            "transactionKey": self._txn_key,
            "sequenceNumber": self._txn_seq,
            "commitTimestamp": now_ms,
            "commitNumber": 10_000_000 + self._commit_number,
            "commitUser": COMMIT_USER,
            "changedFields": list(changed_fields),
        }
        replay_id = self._next_replay_id()
        payload = {"ChangeEventHeader": header, **(body or {})}
        cdc.insert(self.conn, cdc.StoredEvent(replay_id, obj.name, now_ms, payload))
        self._txn_emitted = True
        return replay_id

    def emit_gap(self, obj: ObjectDef, change_type: str, record_ids: Sequence[str]) -> int | None:
        """Emit a gap event (header only) in a transaction of its own."""
        if change_type not in cdc.GAP_TYPES:
            raise ValueError(f"not a gap change type: {change_type}")
        with self.transaction():
            ids_out = [] if change_type == "GAP_OVERFLOW" else list(record_ids)
            return self.emit(obj, change_type, ids_out)

    def _json_values(self, obj: ObjectDef, row: dict[str, Any]) -> dict[str, Any]:
        return {
            name: cdc.json_value(obj.fields[name.lower()], value) for name, value in row.items()
        }

    def _emit_full(self, obj: ObjectDef, change_type: str, record_id: str) -> None:
        """CREATE/UNDELETE: every non-empty field of the record as stored now."""
        if not self.cdc_selected(obj.name):
            return
        fields = list(obj.fields.values())
        row = self.conn.execute(
            f"SELECT {', '.join(quote(f.name) for f in fields)} FROM {quote(obj.name)} "
            'WHERE "Id" = ?',
            (record_id,),
        ).fetchone()
        values = self._json_values(obj, dict(zip([f.name for f in fields], row, strict=True)))
        body, _ = cdc.event_fields(obj, values, None)
        self.emit(obj, change_type, [record_id], body)

    def events_after(
        self, replay_id: int, entities: Sequence[str] | None, limit: int = 500
    ) -> list[cdc.StoredEvent]:
        """Retained events after ``replay_id`` (``entities``: only those objects)."""
        with self.lock:
            self.purge_events()
            return cdc.after(self.conn, replay_id, entities, limit)

    def event_exists(self, replay_id: int) -> bool:
        """True when event ``replay_id`` is still retained."""
        with self.lock:
            self.purge_events()
            return cdc.exists(self.conn, replay_id)

    def newest_replay_id(self) -> int:
        """The replay id of the latest event emitted (0 before any)."""
        with self.lock:
            return self._replay_last

    def purge_events(self) -> int:
        """Drop events older than the event retention; returns how many."""
        cutoff = self.clock.wall_ms() - int(self.event_retention * 1000)
        with self.lock:
            if self._depth:
                return 0
            return cdc.purge(self.conn, cutoff)

    # -- lookups ---------------------------------------------------------------------

    def object(self, name: str) -> ObjectDef:
        """The object called ``name`` (any letter case).

        Raises:
            ApiError: 404 NOT_FOUND, as the REST API answers for an unknown sObject.
        """
        obj = self.schema.get(name)
        if obj is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return obj

    @staticmethod
    def _record_id(obj: ObjectDef, raw_id: str) -> str:
        """The 18-character form of an Id given in a URL for ``obj``.

        Raises:
            ApiError: 404 NOT_FOUND for text that is no Id (Salesforce then reads the
                path segment as an external Id field name), 400 MALFORMED_ID for an Id
                of another object.
        """
        record_id = ids.normalize(raw_id)
        if record_id is None:
            raise ApiError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {raw_id}",
            )
        if not record_id.startswith(obj.key_prefix):
            raise ApiError(
                400, "MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {raw_id}"
            )
        return record_id

    def _existing_id(self, obj: ObjectDef, raw_id: str) -> str:
        record_id = self._record_id(obj, raw_id)
        state = row_state(self.conn, obj, record_id)
        if state is None:
            raise not_found()
        if state[1]:
            raise entity_deleted()
        return record_id

    def get(self, obj: ObjectDef, raw_id: str, fields: Sequence[FieldDef] | None = None) -> Record:
        """The stored values of one live record, keyed by canonical field name.

        Raises:
            ApiError: 404 NOT_FOUND or ENTITY_IS_DELETED, 400 MALFORMED_ID.
        """
        record_id = self._record_id(obj, raw_id)
        with self.lock:
            chosen = list(fields) if fields else list(obj.fields.values())
            cols = ", ".join(quote(f.name) for f in chosen)
            row = self.conn.execute(
                f'SELECT "IsDeleted", {cols} FROM {quote(obj.name)} WHERE "Id" = ?',
                (record_id,),
            ).fetchone()
        if row is None:
            raise not_found()
        if row[0]:
            raise entity_deleted()
        return {f.name: value for f, value in zip(chosen, row[1:], strict=True)}

    def find_by_external_id(self, obj: ObjectDef, field: FieldDef, stored: Any) -> list[str]:
        """Ids of the live records whose ``field`` holds ``stored``."""
        with self.lock:
            rows = self.conn.execute(
                f'SELECT "Id" FROM {quote(obj.name)} WHERE {quote(field.name)} = ? '
                'AND "IsDeleted" = 0 ORDER BY "Id"',
                (stored,),
            ).fetchall()
        return [row[0] for row in rows]

    # -- validated writes ------------------------------------------------------------

    def _check_rules(self, obj: ObjectDef, values: dict[str, Any]) -> None:
        for rule in self.validation_rules:
            rule.check(obj, values)

    def create(self, obj: ObjectDef, values: dict[str, Any]) -> str:
        """Insert one record from request JSON; returns its new Id.

        Raises:
            ApiError: a validation error (see :meth:`convert`), REQUIRED_FIELD_MISSING or
                DUPLICATE_VALUE.
        """
        with self.transaction() as conn:
            self._check_rules(obj, values)
            row = convert(self.conn, self.schema, obj, values, creating=True)
            for f in obj.fields.values():
                if f.system or f.name in row:
                    continue
                if f.default is not None:
                    row[f.name] = int(f.default) if f.type == "boolean" else f.default
                elif f.type == "boolean":
                    row[f.name] = 0
            check_required(obj, row, creating=True)
            check_unique(self.conn, obj, row, None)
            record_id = self.ids.new(obj.key_prefix)
            stamp = format_ms(self.clock.next_ms())
            row.update(
                Id=record_id,
                IsDeleted=0,
                CreatedDate=stamp,
                LastModifiedDate=stamp,
                SystemModstamp=stamp,
            )
            names = list(row)
            conn.execute(
                f"INSERT INTO {quote(obj.name)} "
                f"({ROW_COLUMN}, {', '.join(quote(n) for n in names)}) "
                f"VALUES (?, {', '.join('?' for _ in names)})",
                [self._new_row_number(obj), *(row[n] for n in names)],
            )
            self._emit_full(obj, "CREATE", record_id)
            return record_id

    def update(
        self,
        obj: ObjectDef,
        raw_id: str,
        values: dict[str, Any],
        *,
        if_unmodified_since_ms: int | None = None,
    ) -> str:
        """Update one live record from request JSON; returns its Id.

        Args:
            obj: the object.
            raw_id: 15- or 18-character Id.
            values: the fields to change.
            if_unmodified_since_ms: refuse (412) when the record was modified after this
                moment; HTTP dates have whole seconds, so the comparison is per second.

        Raises:
            ApiError: 404, a validation error, or 412 PRECONDITION_FAILED.
        """
        with self.transaction() as conn:
            record_id = self._existing_id(obj, raw_id)
            values = {k: v for k, v in values.items() if k.lower() != "id"}
            self._check_rules(obj, values)
            row = convert(self.conn, self.schema, obj, values, creating=False)
            if if_unmodified_since_ms is not None:
                state = row_state(self.conn, obj, record_id)
                modified = parse_datetime(state[2]) if state else None
                if modified is not None and to_ms(modified) // 1000 > (
                    if_unmodified_since_ms // 1000
                ):
                    raise ApiError(
                        412,
                        "PRECONDITION_FAILED",
                        "The requested resource has been modified since the time "
                        "specified in the If-Unmodified-Since header",
                    )
            check_required(obj, row, creating=False)
            check_unique(self.conn, obj, row, record_id)
            before = self._stored(obj, record_id, list(row))
            stamp = format_ms(self.clock.next_ms())
            row.update(LastModifiedDate=stamp, SystemModstamp=stamp)
            names = list(row)
            conn.execute(
                f"UPDATE {quote(obj.name)} SET {', '.join(quote(n) + ' = ?' for n in names)} "
                'WHERE "Id" = ?',
                [*(row[n] for n in names), record_id],
            )
            if self.cdc_selected(obj.name):
                changed = [n for n in before if before[n] != row[n]] + ["LastModifiedDate"]
                body, changed_fields = cdc.event_fields(obj, self._json_values(obj, row), changed)
                self.emit(obj, "UPDATE", [record_id], body, changed_fields)
            return record_id

    def _stored(self, obj: ObjectDef, record_id: str, names: list[str]) -> dict[str, Any]:
        """The stored values of ``names`` (system stamps left out) of one record."""
        names = [n for n in names if n not in ("LastModifiedDate", "SystemModstamp")]
        if not names:
            return {}
        row = self.conn.execute(
            f'SELECT {", ".join(quote(n) for n in names)} FROM {quote(obj.name)} WHERE "Id" = ?',
            (record_id,),
        ).fetchone()
        return dict(zip(names, row, strict=True))

    def upsert(
        self, obj: ObjectDef, field_name: str, value: str, values: dict[str, Any]
    ) -> WriteResult:
        """Create or update the record whose external Id ``field_name`` is ``value``.

        Raises:
            ApiError: 404 NOT_FOUND for a field that is not an external Id, or a
                validation error.
            MultipleMatches: several records hold ``value``.
        """
        f = obj.field(field_name)
        if f is None or not (f.external_id or f.name == "Id"):
            raise ApiError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {field_name}",
            )
        with self.transaction():
            if f.name == "Id":
                # upsert on Id updates that record; only a blank Id creates one
                body = {k: v for k, v in values.items() if k.lower() != "id"}
                if value and ids.normalize(value) is None:
                    raise ApiError(
                        400,
                        "MALFORMED_ID",
                        f"{obj.label} ID: id value of incorrect type: {value}",
                        ["Id"],
                    )
                if value:
                    return WriteResult(self.update(obj, value, body), created=False)
                return WriteResult(self.create(obj, body), created=True)
            try:
                stored = sqlite_value_from_json(f, value)
            except FieldValueError as exc:
                raise ApiError(400, value_error_code(f, exc), str(exc), [f.name]) from None
            matches = self.find_by_external_id(obj, f, stored)
            if len(matches) > 1:
                raise MultipleMatches(obj.name, matches)
            body = {k: v for k, v in values.items() if k.lower() != f.name.lower()}
            if matches:
                return WriteResult(self.update(obj, matches[0], body), created=False)
            body[f.name] = value
            return WriteResult(self.create(obj, body), created=True)

    def delete(self, obj: ObjectDef, raw_id: str) -> str:
        """Soft-delete one record, with what its relationships demand; returns its Id.

        Master-detail and cascade-delete children go to the recycle bin with it; optional
        lookups to it are cleared; a required lookup from a record that stays refuses the
        delete (see :mod:`sync.sandbox.deletes`).

        Raises:
            ApiError: 404 NOT_FOUND or ENTITY_IS_DELETED, 400 MALFORMED_ID, or 400
                DELETE_FAILED naming the records that still refer to it.
        """
        with self.transaction() as conn:
            record_id = self._existing_id(obj, raw_id)
            plan = deletes.plan_delete(conn, self.schema, obj, record_id)
            stamps = deletes.apply_delete(conn, self.clock, plan)
            for group in plan.deleted.values():
                if group.ids:
                    self.emit(group.obj, "DELETE", group.ids)
            for child, fields_by_id in plan.cleared.values():
                for child_id, names in fields_by_id.items():
                    cleared = list(dict.fromkeys(names))
                    values = {n: None for n in cleared}
                    values["LastModifiedDate"] = cdc.json_value(
                        child.fields["lastmodifieddate"], stamps[child_id]
                    )
                    body, changed = cdc.event_fields(child, values, [*cleared, "LastModifiedDate"])
                    self.emit(child, "UPDATE", [child_id], body, changed)
            return record_id

    def undelete(self, obj: ObjectDef, raw_id: str) -> str:
        """Bring a record back from the recycle bin, with the children deleted with it.

        Raises:
            ApiError: 404 NOT_FOUND (never existed or purged), 400 MALFORMED_ID, or 400
                UNDELETE_FAILED for a record that is not in the recycle bin.
        """
        with self.transaction() as conn:
            record_id = self._record_id(obj, raw_id)
            state = row_state(self.conn, obj, record_id)
            if state is None:
                raise not_found()
            if not state[1]:
                raise ApiError(400, "UNDELETE_FAILED", "Entity is not in the recycle bin", ["Id"])
            restored = deletes.apply_undelete(conn, self.schema, self.clock, obj, record_id)
            for restored_obj, restored_id in restored:
                self._emit_full(restored_obj, "UNDELETE", restored_id)
            return record_id

    # -- replication windows and purge ------------------------------------------------

    def deleted_between(self, obj: ObjectDef, start: str, end: str) -> list[tuple[str, str]]:
        """(Id, deletedDate) of records deleted in [start, end) (stored-format bounds)."""
        with self.lock:
            self.maybe_purge()
            return [
                (row[0], row[1])
                for row in self.conn.execute(
                    f'SELECT "Id", "SystemModstamp" FROM {quote(obj.name)} WHERE '
                    '"IsDeleted" = 1 AND "SystemModstamp" >= ? AND "SystemModstamp" < ? '
                    'ORDER BY "SystemModstamp"',
                    (start, end),
                )
            ]

    def updated_between(self, obj: ObjectDef, start: str, end: str) -> list[str]:
        """Ids of live records created or changed in [start, end) (stored-format bounds)."""
        with self.lock:
            return [
                row[0]
                for row in self.conn.execute(
                    f'SELECT "Id" FROM {quote(obj.name)} WHERE "IsDeleted" = 0 AND '
                    '"SystemModstamp" >= ? AND "SystemModstamp" < ? ORDER BY "SystemModstamp"',
                    (start, end),
                )
            ]

    def earliest_available_ms(self) -> int:
        """The oldest moment the deleted-records window still covers (retention)."""
        return self.clock.wall_ms() - int(self.retention * 1000)

    def maybe_purge(self, *, force: bool = False) -> int:
        """Hard-delete records deleted longer ago than the retention; returns how many.

        Runs at most once a second unless ``force``; purged records vanish from queryAll
        and the deleted window, as the recycle bin's purge does in Salesforce. Records
        deleted with a master go with it.
        """
        now = time.monotonic()
        if not force and now - self._last_purge < min(_PURGE_EVERY, self.retention):
            return 0
        self._last_purge = now
        cutoff = format_ms(self.earliest_available_ms())
        self.purge_events()
        with self.transaction() as conn:
            return deletes.purge(conn, self.schema, cutoff)

    # -- queries -----------------------------------------------------------------------

    def select_rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run a read-only statement under the lock."""
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def rows_by_number(
        self, obj: ObjectDef, columns: Sequence[str], numbers: Sequence[int]
    ) -> list[tuple[Any, ...]]:
        """Rows with the given row numbers, in that order (purged ones left out)."""
        if not numbers:
            return []
        cols = ", ".join(quote(c) for c in columns)
        low, high = min(numbers), max(numbers)
        if high - low < 2 * len(numbers):
            # a dense run of rows (a scan in table order): one range read beats a long IN
            where, params = f"{ROW_COLUMN} BETWEEN ? AND ?", [low, high]
        else:
            where, params = f"{ROW_COLUMN} IN ({', '.join('?' for _ in numbers)})", list(numbers)
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {ROW_COLUMN}, {cols} FROM {quote(obj.name)} WHERE {where}", params
            ).fetchall()
        by_number = {row[0]: row[1:] for row in rows}
        return [by_number[n] for n in numbers if n in by_number]

    # -- bulk load, snapshot, reset ---------------------------------------------------

    def bulk_insert(
        self, obj: ObjectDef, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert already-encoded rows (seeding); no validation, one statement per table."""
        with self.transaction() as conn:
            conn.executemany(
                f"INSERT INTO {quote(obj.name)} ({', '.join(quote(c) for c in columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})",
                rows,
            )
            self._observe_rows()

    def count(self, obj: ObjectDef, *, include_deleted: bool = False) -> int:
        """How many records ``obj`` has."""
        where = "" if include_deleted else ' WHERE "IsDeleted" = 0'
        with self.lock:
            row = self.conn.execute(f"SELECT COUNT(*) FROM {quote(obj.name)}{where}").fetchone()
        return int(row[0])

    def is_empty(self) -> bool:
        """True when no object has any record."""
        with self.lock:
            return all(
                self.conn.execute(f"SELECT 1 FROM {quote(o.name)} LIMIT 1").fetchone() is None
                for o in self.schema.objects.values()
            )

    def wipe(self) -> None:
        """Delete every record and restart the Id counters."""
        with self.transaction() as conn:
            for obj in self.schema.objects.values():
                conn.execute(f"DELETE FROM {quote(obj.name)}")
        self.ids.restore({})

    def take_snapshot(self) -> None:
        """Remember the current data (what :meth:`restore_snapshot` goes back to)."""
        with self.lock:
            copy = sqlite3.connect(":memory:", check_same_thread=False)
            self.conn.backup(copy)
            if self._snapshot:
                self._snapshot[0].close()
            self._snapshot = (copy, self.ids.state())

    def restore_snapshot(self) -> None:
        """Put back the data of :meth:`take_snapshot` (or empty tables when none)."""
        with self.lock:
            if self._snapshot is None:
                self.wipe()
                return
            copy, counters = self._snapshot
            copy.backup(self.conn)
            self.ids.restore(counters)
            self._observe_rows()
