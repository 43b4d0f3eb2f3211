"""Bulk API 2.0 query jobs: ``/services/data/vXX.X/jobs/query``.

A job is created in ``UploadComplete`` (``POST``), runs (``InProgress``), and ends
``JobComplete``, ``Failed`` or ``Aborted``. The sandbox takes the job's snapshot of
matching rows when it is created (the same SOQL engine as the REST query, so the same
records in the same order), and the job stays ``InProgress`` at least
``processing_ms`` (a fault setting; 0 by default) before it completes. Its results are
CSV pages: a header row on every page, columns in SELECT order (parent fields dotted,
``Account.Name``), every value quoted, nulls empty, datetimes ``...000Z``, numbers as
Salesforce's Java doubles print them (``23.0``), booleans ``true``/``false``. Paging
goes by ``Sforce-Locator`` (an opaque token, the literal ``null`` after the last page)
and ``maxRecords``; a locator stays valid for as long as the job exists, so any page
can be fetched again. Each page reads the records' current values by row number.

What Bulk refuses (COUNT() and other aggregates, GROUP BY, OFFSET, TYPEOF,
parent-to-child subqueries, compound address fields) is answered at create with 400
API_ERROR; other SOQL errors keep the REST query's codes. Jobs are deleted by
``DELETE`` (only in a terminal state), after 7 days in a terminal state, or when more
than :data:`MAX_JOBS` jobs or :data:`MAX_JOB_ROWS` rows are held (the oldest terminal
ones first).
"""

from __future__ import annotations

import base64
import random
import threading
import time
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sync.sandbox import ids
from sync.sandbox.clock import format_ms
from sync.sandbox.errors import ApiError, method_not_allowed, not_found
from sync.sandbox.rest import ApiRequest, ApiResponse, RestApi
from sync.sandbox.schema import FieldDef, ObjectDef, Schema
from sync.sandbox.selection import Column, read_rows
from sync.sandbox.soql import SoqlError, compile_select, parse
from sync.sandbox.soql.compiler import ParentColumn
from sync.sandbox.soql.lexer import Kind, tokenize
from sync.sandbox.store import ROW_COLUMN, Store
from sync.sandbox.values import REAL_TYPES

JOB_PREFIX = "750"
DEFAULT_MAX_RECORDS = 50_000  # simple-salesforce's and Airbyte's page size
MAX_JOBS = 500
MAX_JOB_ROWS = 20_000_000  # row numbers held across all jobs (8 bytes each)
TERMINAL_LIFETIME = 7 * 86400.0  # seconds a finished job is kept (Salesforce: 7 days)
DAILY_QUERY_JOBS = 10_000
CSV_TYPE = "text/csv; charset=UTF-8"
DELIMITERS = {
    "BACKQUOTE": "`",
    "CARET": "^",
    "COMMA": ",",
    "PIPE": "|",
    "SEMICOLON": ";",
    "TAB": "\t",
}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
# Compound fields of a real org's mirrored objects; Bulk refuses them by name.
COMPOUND_FIELDS = {
    "account": frozenset({"billingaddress", "shippingaddress"}),
    "contact": frozenset({"mailingaddress", "otheraddress"}),
}
FAILURE_MESSAGE = (
    "InternalServerError: the query job failed after 15 attempts. Please try again later."
)


class JobState(StrEnum):
    """The states of a query job."""

    UPLOAD_COMPLETE = "UploadComplete"
    IN_PROGRESS = "InProgress"
    JOB_COMPLETE = "JobComplete"
    FAILED = "Failed"
    ABORTED = "Aborted"


TERMINAL = frozenset({JobState.JOB_COMPLETE, JobState.FAILED, JobState.ABORTED})


def api_error(message: str, status: int = 400) -> ApiError:
    """Bulk API 2.0's error shape: ``[{"errorCode": "API_ERROR", "message": ...}]``."""
    return ApiError(status, "API_ERROR", message)


def encode_locator(offset: int) -> str:
    """An opaque locator for the page starting at ``offset`` (``MTAwMDA`` for 10000)."""
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def decode_locator(locator: str) -> int | None:
    """The offset of ``locator``, or None when it is not one of ours."""
    try:
        text = base64.b64decode(locator + "=" * (-len(locator) % 4), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


@dataclass
class BulkFaults:
    """Bulk-only fault settings (``/_sandbox/faults``).

    Attributes:
        fail_rate: share of new jobs that end Failed (``bulk_fail_rate``).
        processing_ms: time a job stays InProgress at least (``bulk_processing_ms``).
        unsupported: objects Bulk refuses (``bulk_unsupported_objects``), as for the
            objects Salesforce does not serve through Bulk.
    """

    fail_rate: float = 0.0
    processing_ms: float = 0.0
    unsupported: frozenset[str] = frozenset()
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    KEYS = frozenset({"bulk_fail_rate", "bulk_processing_ms", "bulk_unsupported_objects"})

    def configure(self, spec: dict[str, Any]) -> None:
        """Apply the bulk keys of ``spec`` that are present.

        Raises:
            ValueError: a value is out of range.
        """
        if "bulk_fail_rate" in spec:
            rate = float(spec["bulk_fail_rate"])
            if not 0.0 <= rate <= 1.0:
                raise ValueError("bulk_fail_rate must be between 0 and 1")
            self.fail_rate = rate
        if "bulk_processing_ms" in spec:
            delay = float(spec["bulk_processing_ms"])
            if delay < 0:
                raise ValueError("bulk_processing_ms must not be negative")
            self.processing_ms = delay
        if "bulk_unsupported_objects" in spec:
            names = spec["bulk_unsupported_objects"]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ValueError("bulk_unsupported_objects must be a list of object names")
            self.unsupported = frozenset(n.lower() for n in names)

    def clear(self) -> None:
        """No bulk faults."""
        self.fail_rate = 0.0
        self.processing_ms = 0.0
        self.unsupported = frozenset()

    def describe(self) -> dict[str, Any]:
        """The settings as ``/_sandbox/faults`` shows them."""
        return {
            "bulk_fail_rate": self.fail_rate,
            "bulk_processing_ms": self.processing_ms,
            "bulk_unsupported_objects": sorted(self.unsupported),
        }


@dataclass
class QueryJob:
    """One Bulk API 2.0 query job."""

    id: str
    operation: str
    query: str
    obj: ObjectDef
    columns: list[Column]
    delimiter: str
    line_ending: str
    api_version: str
    created_ms: int
    ready_at: float  # monotonic time the job leaves InProgress
    fails: bool
    rows: array[int] = field(default_factory=lambda: array("q"))
    aborted: bool = False
    finished_ms: int | None = None
    processing_ms: int = 0

    def state(self, now: float) -> JobState:
        """The job's state at monotonic time ``now``."""
        if self.aborted:
            return JobState.ABORTED
        if now < self.ready_at:
            return JobState.IN_PROGRESS
        return JobState.FAILED if self.fails else JobState.JOB_COMPLETE

    def info(self, now: float, *, full: bool = True) -> dict[str, Any]:
        """The job info as ``GET /jobs/query/{id}`` answers it."""
        state = self.state(now)
        created = format_ms(self.created_ms)
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.obj.name,
            "createdById": "0055g0000000001AAA",
            "createdDate": created,
            "systemModstamp": format_ms(self.finished_ms) if self.finished_ms else created,
            "state": state.value,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "lineEnding": "CRLF" if self.line_ending == "\r\n" else "LF",
            "columnDelimiter": next(k for k, v in DELIMITERS.items() if v == self.delimiter),
        }
        if full:
            done = state is JobState.JOB_COMPLETE
            body.update(
                {
                    "jobType": "V2Query",
                    "numberRecordsProcessed": len(self.rows) if done else 0,
                    "retries": 15 if state is JobState.FAILED else 0,
                    "totalProcessingTime": self.processing_ms if state in TERMINAL else 0,
                    "isPkChunkingSupported": self.obj.name.endswith("__c"),
                }
            )
            if state is JobState.FAILED:
                body["errorMessage"] = FAILURE_MESSAGE
        return body


def _csv_column(column: Column, values: tuple[Any, ...]) -> list[str]:
    """The CSV cells of one column: every value quoted, ``"`` doubled, null empty."""
    kind = (column.field if isinstance(column, ParentColumn) else column).type
    if kind == "boolean":
        return ['"true"' if v else '"false"' if v is not None else "" for v in values]
    if kind in REAL_TYPES:
        return ['"' + repr(float(v)) + '"' if v is not None else "" for v in values]
    if kind == "int":
        return ['"' + str(int(v)) + '"' if v is not None else "" for v in values]
    if kind == "datetime":
        # stored 2026-11-22T10:00:00.000+0000, Bulk writes 2026-11-22T10:00:00.000Z
        return [
            '"' + (v[:-5] + "Z" if v.endswith("+0000") else v) + '"' if v is not None else ""
            for v in values
        ]
    return [
        ('"' + v.replace('"', '""') + '"' if '"' in v else '"' + v + '"') if v is not None else ""
        for v in map(_text_or_none, values)
    ]


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _label(column: Column) -> str:
    return column.label if isinstance(column, ParentColumn) else column.name


def _refusal(text: str, obj_hint: str | None) -> str | None:
    """What Bulk refuses in ``text``, judged on its tokens, or None."""
    try:
        tokens = tokenize(text)
    except SoqlError:
        return None  # the parser reports it with the REST query's code
    depth = 0
    in_select = True
    for i, token in enumerate(tokens):
        word = token.text.upper() if token.kind is Kind.IDENT else ""
        following = tokens[i + 1] if i + 1 < len(tokens) else token
        if token.kind is Kind.LPAREN:
            if in_select and following.text.upper() == "SELECT":
                return (
                    "Aggregate Relationships not supported in Bulk V2 Query with CSV content type"
                )
            depth += 1
        elif token.kind is Kind.RPAREN:
            depth -= 1
        elif word == "TYPEOF":
            return "TYPEOF is not supported in Bulk API 2.0 queries"
        elif depth == 0 and word == "FROM":
            in_select = False
        elif in_select and token.kind is Kind.IDENT and following.kind is Kind.LPAREN:
            return (
                f"Aggregate queries and functions such as {token.text}() are not supported "
                "in Bulk API 2.0 queries"
            )
        elif depth == 0 and word == "GROUP" and following.text.upper() == "BY":
            return "GROUP BY is not supported in Bulk API 2.0 queries"
        elif depth == 0 and word == "OFFSET":
            return "OFFSET is not supported in Bulk API 2.0 queries"
        elif (
            in_select
            and token.kind is Kind.IDENT
            and token.text.lower() in COMPOUND_FIELDS.get(obj_hint or "", frozenset())
        ):
            return "Selecting compound data not supported in Bulk Query"
    return None


def _object_hint(text: str) -> str | None:
    """The object after FROM (lower case), for the compound field check."""
    words = text.replace(",", " ").split()
    for i, word in enumerate(words[:-1]):
        if word.upper() == "FROM":
            return words[i + 1].lower()
    return None


class BulkQueries:
    """``/jobs/query`` on top of the REST API's store and SOQL engine.

    Args:
        api: the REST API; ``jobs/...`` paths are routed here.
        store: the records.
        schema: the objects.
        faults: the bulk fault settings.
        clock: monotonic time (tests pass their own).
    """

    def __init__(
        self,
        api: RestApi,
        store: Store,
        schema: Schema,
        faults: BulkFaults,
        clock: Any = time.monotonic,
    ) -> None:
        self.store = store
        self.schema = schema
        self.faults = faults
        self.clock = clock
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, QueryJob] = OrderedDict()
        self._ids = ids.IdAllocator()
        self._created: list[float] = []  # wall times of job creations, last 24 hours
        api.bulk = self.handle
        api.bulk_jobs_remaining = self.jobs_remaining

    # -- bookkeeping -------------------------------------------------------------------

    def clear(self) -> None:
        """Drop every job (a sandbox reset)."""
        with self._lock:
            self._jobs.clear()
            self._created.clear()

    def __len__(self) -> int:
        return len(self._jobs)

    def jobs_remaining(self) -> int:
        """``DailyBulkV2QueryJobs`` remaining over the rolling 24 hours."""
        cutoff = time.time() - 86400.0
        with self._lock:
            self._created = [t for t in self._created if t > cutoff]
            return max(0, DAILY_QUERY_JOBS - len(self._created))

    def _expire(self, now: float) -> None:
        wall = time.time()
        for job_id, job in list(self._jobs.items()):
            if job.state(now) in TERMINAL and wall - job.created_ms / 1000 > TERMINAL_LIFETIME:
                del self._jobs[job_id]
        # bounded memory: the oldest jobs go first, finished ones before running ones
        while len(self._jobs) > 1 and (
            len(self._jobs) > MAX_JOBS
            or sum(len(j.rows) for j in self._jobs.values()) > MAX_JOB_ROWS
        ):
            victim = next(
                (k for k, j in self._jobs.items() if j.state(now) in TERMINAL),
                next(iter(self._jobs)),
            )
            del self._jobs[victim]

    def _job(self, job_id: str) -> QueryJob:
        normalized = ids.normalize(job_id) or job_id
        with self._lock:
            job = self._jobs.get(normalized)
        if job is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    # -- routing -----------------------------------------------------------------------

    def handle(self, req: ApiRequest, rest: list[str]) -> ApiResponse:
        """Answer ``jobs/...`` (``rest`` is the path after ``jobs``)."""
        method = req.method.upper()
        if not rest or rest[0] != "query":
            raise not_found()
        parts = rest[1:]
        if not parts:
            if method == "POST":
                return self.create(req)
            if method == "GET":
                return self.list_jobs(req)
            raise method_not_allowed(method, ["GET", "POST"])
        job = self._job(parts[0])
        if len(parts) == 1:
            if method == "GET":
                return ApiResponse(200, job.info(self.clock()))
            if method == "PATCH":
                return self.abort(req, job)
            if method == "DELETE":
                return self.delete(job)
            raise method_not_allowed(method, ["GET", "PATCH", "DELETE"])
        if len(parts) == 2 and parts[1] == "results":
            if method != "GET":
                raise method_not_allowed(method, ["GET"])
            return self.results(req, job)
        raise not_found()

    # -- resources ---------------------------------------------------------------------

    def create(self, req: ApiRequest) -> ApiResponse:
        """``POST /jobs/query``: validate, take the snapshot, answer UploadComplete."""
        body = req.json_object()
        operation = body.get("operation")
        if operation not in ("query", "queryAll"):
            raise api_error(f"Invalid operation: {operation!r}; use query or queryAll")
        text = body.get("query")
        if not isinstance(text, str) or not text.strip():
            raise api_error("A query is required")
        delimiter_name = body.get("columnDelimiter", "COMMA")
        if delimiter_name not in DELIMITERS:
            raise api_error(f"Invalid columnDelimiter: {delimiter_name!r}")
        ending_name = body.get("lineEnding", "LF")
        if ending_name not in LINE_ENDINGS:
            raise api_error(f"Invalid lineEnding: {ending_name!r}")
        content_type = body.get("contentType", "CSV")
        if content_type != "CSV":
            raise api_error(f"Invalid contentType: {content_type!r}; only CSV is supported")
        refusal = _refusal(text, _object_hint(text))
        if refusal is not None:
            raise api_error(refusal)
        try:
            parsed = parse(text)
            if parsed.count_only:
                raise api_error(
                    "Aggregate queries such as COUNT() are not supported in Bulk API 2.0 queries"
                )
            compiled = compile_select(parsed, self.schema, include_deleted=operation == "queryAll")
        except SoqlError as exc:
            raise ApiError(400, exc.error_code, exc.message) from None
        obj = compiled.object
        if obj.name.lower() in self.faults.unsupported:
            raise ApiError(
                400, "INVALIDENTITY", f"Entity '{obj.name}' is not supported by the Bulk API."
            )
        if self.jobs_remaining() <= 0:
            raise ApiError(
                400,
                "LIMIT_EXCEEDED",
                f"Exceeded the limit of {DAILY_QUERY_JOBS} query jobs in 24 hours",
            )
        started = time.perf_counter()
        sql, params = compiled.sql(ROW_COLUMN)
        with self.store.lock:
            self.store.maybe_purge()
            rows = array("q", (row[0] for row in self.store.select_rows(sql, params)))
        spent_ms = int((time.perf_counter() - started) * 1000)
        now = self.clock()
        fails = self.faults.fail_rate > 0 and self.faults.rng.random() < self.faults.fail_rate
        job = QueryJob(
            id="",
            operation=operation,
            query=text,
            obj=obj,
            columns=list(compiled.columns),
            delimiter=DELIMITERS[delimiter_name],
            line_ending=LINE_ENDINGS[ending_name],
            api_version=req.version,
            created_ms=int(time.time() * 1000),
            ready_at=now + self.faults.processing_ms / 1000.0,
            fails=fails,
            rows=array("q") if fails else rows,
            processing_ms=max(spent_ms, int(self.faults.processing_ms)),
        )
        with self._lock:
            job.id = self._ids.new(JOB_PREFIX)
            self._jobs[job.id] = job
            self._expire(now)  # never the new job: the oldest go first
            self._created.append(time.time())
        info = job.info(now, full=False)
        info["state"] = JobState.UPLOAD_COMPLETE.value
        return ApiResponse(200, info)

    def list_jobs(self, req: ApiRequest) -> ApiResponse:
        """``GET /jobs/query``: every job (one page), newest last."""
        job_type = req.params.get("jobType")
        now = self.clock()
        with self._lock:
            self._expire(now)
            jobs = list(self._jobs.values())
        records = [] if job_type not in (None, "", "V2Query") else [j.info(now) for j in jobs]
        return ApiResponse(200, {"done": True, "records": records, "nextRecordsUrl": None})

    def abort(self, req: ApiRequest, job: QueryJob) -> ApiResponse:
        """``PATCH {"state": "Aborted"}``: only while the job has not ended."""
        body = req.json_object()
        if body.get("state") != JobState.ABORTED.value:
            raise api_error("Only the state Aborted can be set on a query job")
        now = self.clock()
        if job.state(now) in TERMINAL:
            raise api_error(
                f"Unable to abort the job because it is in the {job.state(now).value} state"
            )
        job.aborted = True
        job.finished_ms = int(time.time() * 1000)
        return ApiResponse(200, job.info(now))

    def delete(self, job: QueryJob) -> ApiResponse:
        """``DELETE``: 204 for a terminated job, else 400 API_ERROR."""
        if job.state(self.clock()) not in TERMINAL:
            raise api_error(
                "Error encountered when deleting the job because the job is not terminated"
            )
        with self._lock:
            self._jobs.pop(job.id, None)
        return ApiResponse(204)

    def results(self, req: ApiRequest, job: QueryJob) -> ApiResponse:
        """``GET .../results?locator=&maxRecords=``: one CSV page."""
        state = job.state(self.clock())
        if state is not JobState.JOB_COMPLETE:
            raise ApiError(
                412,
                "JOB_NOT_COMPLETE",
                "can only download query results of successfully completed bulk job with "
                f"status: JOB_COMPLETE. Current status: {state.value}",
            )
        if req.version != job.api_version:
            raise ApiError(
                409,
                "API_ERROR",
                f"The job was created with API version {job.api_version}; "
                f"request its results with the same version",
            )
        raw_max = req.params.get("maxRecords")
        max_records = DEFAULT_MAX_RECORDS
        if raw_max not in (None, ""):
            if not raw_max.isdigit() or int(raw_max) < 1:
                raise api_error(f"Invalid maxRecords: {raw_max}")
            max_records = int(raw_max)
        raw_locator = req.params.get("locator")
        offset = 0
        if raw_locator not in (None, "", "null"):
            decoded = decode_locator(raw_locator)
            if decoded is None or decoded > len(job.rows):
                raise api_error(f"Invalid locator: {raw_locator}")
            offset = decoded
        end = min(offset + max_records, len(job.rows))
        body, count = self._csv(job, job.rows[offset:end])
        headers = {
            "Sforce-NumberOfRecords": str(count),
            "Sforce-Locator": encode_locator(end) if end < len(job.rows) else "null",
        }
        return ApiResponse(200, None, headers, raw=body, media_type=CSV_TYPE)

    @staticmethod
    def _header(job: QueryJob) -> str:
        sep = job.delimiter
        return sep.join('"' + _label(c) + '"' for c in job.columns) + job.line_ending

    def _csv(self, job: QueryJob, numbers: array[int]) -> tuple[bytes, int]:
        """The page's CSV and its number of records (purged records are left out)."""
        columns = job.columns
        if all(isinstance(c, FieldDef) for c in columns):
            names = [c.name for c in columns if isinstance(c, FieldDef)]
            rows = self.store.rows_by_number(job.obj, names, numbers)
        else:
            rows = [s.values[1:] for s in read_rows(self.store, job.obj, columns, numbers)]
        if not rows:
            return self._header(job).encode("utf-8"), 0
        # column by column: one comprehension per column, no call per value
        cells = [
            _csv_column(c, values)
            for c, values in zip(columns, zip(*rows, strict=True), strict=True)
        ]
        sep, end = job.delimiter, job.line_ending
        body = end.join(sep.join(line) for line in zip(*cells, strict=True))
        # Salesforce strips NUL from results; clients strip it too
        text = (self._header(job) + body + end).replace("\x00", "")
        return text.encode("utf-8"), len(rows)
