"""Bulk API 2.0 query jobs: create, poll, read the CSV result pages, delete.

A large read costs a handful of calls this way (create, a few polls, one call per
results page of up to ``page_size`` records, delete) instead of one call per 2,000
records through REST. Every request goes through the client's transport, so it is
retried, sorted by :mod:`sync.crm.errors` and counted in :attr:`CrmClient.api_calls`
like any other.

Polling starts fast and backs off (0.5 s, 1 s, 2 s, 4 s, then every 5 s by default);
a job still running when the give-up time is reached is aborted and deleted, and
:class:`BulkJobTimeout` is raised. A job that ends Failed or Aborted raises
:class:`BulkJobFailed`. Each results page is parsed with the csv module as it arrives
(values may span lines); nothing else of the job is held in memory.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests

from sync.crm.answers import WrongShape, json_object
from sync.crm.errors import CrmError, MalformedResponseError
from sync.crm.transport import CrmTransport

logger = logging.getLogger("sync.crm")

DEFAULT_PAGE_SIZE = 100_000
DEFAULT_POLL_START = 0.5
DEFAULT_POLL_MAX = 5.0
DEFAULT_GIVE_UP = 1800.0
CSV_ACCEPT = "text/csv; charset=UTF-8"
TERMINAL_STATES = frozenset({"JobComplete", "Failed", "Aborted"})


class BulkJobFailed(CrmError):
    """The job ended Failed or Aborted; ``message`` holds the CRM's errorMessage."""

    job: BulkJob | None = None  # the job as last seen


class BulkJobTimeout(BulkJobFailed):
    """The job did not finish within the give-up time; it was aborted."""


@dataclass(frozen=True)
class BulkJob:
    """A query job as the CRM last described it."""

    id: str
    state: str
    object: str = ""
    operation: str = ""
    records_processed: int = 0
    error_message: str | None = None

    @property
    def terminal(self) -> bool:
        """True once the job can change no more (JobComplete, Failed, Aborted)."""
        return self.state in TERMINAL_STATES

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BulkJob:
        """Read a job info answer.

        Raises:
            WrongShape: no id or state.
        """
        job_id, state = data.get("id"), data.get("state")
        if not isinstance(job_id, str) or not isinstance(state, str):
            raise WrongShape("a job info needs an id and a state")
        processed = data.get("numberRecordsProcessed")
        message = data.get("errorMessage")
        return cls(
            id=job_id,
            state=state,
            object=str(data.get("object") or ""),
            operation=str(data.get("operation") or ""),
            records_processed=processed if isinstance(processed, int) else 0,
            error_message=str(message) if message else None,
        )


@dataclass
class CsvPage:
    """One results page.

    Attributes:
        header: the column names (dotted for parent fields), in SELECT order.
        rows: the records, as lists of strings in header order ("" for null), parsed
            as they are iterated (once).
        count: the records the CRM says the page holds (Sforce-NumberOfRecords).
        locator: the next page's locator, None after the last page.
    """

    header: list[str]
    rows: Iterator[list[str]]
    count: int
    locator: str | None


def backoff_delays(start: float, cap: float) -> Iterator[float]:
    """``start``, doubling each time, never above ``cap`` (0.5, 1, 2, 4, 5, 5, ...)."""
    delay = start
    while True:
        yield min(delay, cap)
        delay = min(delay * 2, cap)


def _lines(body: bytes) -> Iterator[str]:
    """The body's text, line by line with line endings kept, decoded as it is read.

    Decoding a few kilobytes at a time keeps the page in memory once (as bytes); NUL
    characters are dropped (the CRM can emit them; no column could hold them).
    """
    text = io.TextIOWrapper(io.BytesIO(body), encoding="utf-8", newline="")
    if b"\x00" not in body:
        return text  # the common case: no per-line work in Python
    return (line.replace("\x00", "") for line in text)


def parse_csv_page(body: bytes, delimiter: str = ",") -> tuple[list[str], Iterator[list[str]]]:
    """The header of one results page, and its rows as an iterator parsed on demand.

    Raises:
        ValueError: the body is not CSV with a header row (a malformed row, or bytes
            that are not UTF-8, raise ValueError when the iterator reaches them).
    """
    reader = csv.reader(_lines(body), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError("empty results page: no header row") from None
    except csv.Error as exc:
        raise ValueError(f"malformed CSV: {exc}") from None
    width = len(header)

    def rows() -> Iterator[list[str]]:
        try:
            for row in reader:
                if len(row) != width:
                    raise ValueError(f"a CSV row has {len(row)} values for {width} columns")
                yield row
        except csv.Error as exc:
            raise ValueError(f"malformed CSV: {exc}") from None

    return header, rows()


class BulkQueries:
    """Bulk API 2.0 query jobs through ``crm``'s transport.

    Args:
        crm: the client (login, retries, error sorting and call counting).
        page_size: ``maxRecords`` per results page.
        poll_start: first delay between polls, in seconds.
        poll_max: the longest delay between polls.
        give_up: seconds after which a running job is aborted.
        sleep: how to wait (tests pass their own).
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        crm: CrmTransport,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        poll_start: float = DEFAULT_POLL_START,
        poll_max: float = DEFAULT_POLL_MAX,
        give_up: float = DEFAULT_GIVE_UP,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be positive, got {page_size}")
        if not 0 < poll_start <= poll_max:
            raise ValueError("poll_start must be positive and at most poll_max")
        self.crm = crm
        self.page_size = page_size
        self.poll_start = poll_start
        self.poll_max = poll_max
        self.give_up = give_up
        self.sleep = sleep
        self.clock = clock

    def _url(self, *parts: str) -> str:
        return self.crm.data_url("/".join(("jobs", "query", *parts)))

    def _job(self, data: Any) -> BulkJob:
        return BulkJob.from_json(json_object(data))

    # -- one request each ----------------------------------------------------------

    def create(self, soql: str, *, include_deleted: bool = False) -> BulkJob:
        """``POST /jobs/query``; the job starts UploadComplete.

        Not resent after an ambiguous failure (a second job would be created); the
        caller falls back to REST instead.

        Raises:
            CrmRequestError: 400 API_ERROR when Bulk refuses the query (aggregates,
                OFFSET, compound fields, ...) or INVALIDENTITY for an unsupported object.
        """
        body = {
            "operation": "queryAll" if include_deleted else "query",
            "query": soql,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        }
        job: BulkJob = self.crm._request(
            "POST", self._url(), body=body, shape=self._job, idempotent=False
        )
        logger.info("bulk query job %s created for %s", job.id, job.object or "?")
        return job

    def info(self, job_id: str) -> BulkJob:
        """``GET /jobs/query/{id}``."""
        job: BulkJob = self.crm._request("GET", self._url(job_id), shape=self._job)
        return job

    def abort(self, job_id: str) -> BulkJob:
        """``PATCH {"state": "Aborted"}`` (only while the job runs)."""
        job: BulkJob = self.crm._request(
            "PATCH", self._url(job_id), body={"state": "Aborted"}, shape=self._job
        )
        return job

    def delete(self, job_id: str) -> None:
        """``DELETE /jobs/query/{id}`` (only once the job has ended)."""
        self.crm._request("DELETE", self._url(job_id), expect_body=False)

    def page(self, job_id: str, locator: str | None) -> CsvPage:
        """One results page (the first when ``locator`` is None).

        Raises:
            MalformedResponseError: the answer is not CSV with the paging headers.
        """
        params = {"maxRecords": str(self.page_size)}
        if locator:
            params["locator"] = locator
        path = self._url(job_id, "results")
        response: requests.Response = self.crm._request(
            "GET", path, params=params, headers={"Accept": CSV_ACCEPT}, raw=True
        )
        count = response.headers.get("Sforce-NumberOfRecords", "")
        if not count.isdigit():
            raise MalformedResponseError(
                f"results page without a Sforce-NumberOfRecords count ({count!r})",
                method="GET",
                endpoint=path,
            )
        try:
            header, rows = parse_csv_page(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedResponseError(
                f"results page is not CSV: {exc}", method="GET", endpoint=path
            ) from None
        following = response.headers.get("Sforce-Locator")
        return CsvPage(
            header, rows, int(count), None if following in (None, "", "null") else following
        )

    # -- a whole job -----------------------------------------------------------------

    def wait(self, job: BulkJob) -> BulkJob:
        """Poll until ``job`` ends; abort it at the give-up time.

        Raises:
            BulkJobFailed: it ended Failed or Aborted.
            BulkJobTimeout: it was still running at the give-up time (now aborted).
        """
        deadline = self.clock() + self.give_up
        delays = backoff_delays(self.poll_start, self.poll_max)
        while not job.terminal:
            left = deadline - self.clock()
            if left <= 0:
                aborted = self._abort_quietly(job.id)
                timeout = BulkJobTimeout(
                    f"bulk query job {job.id} still {job.state} after {self.give_up:g} s; aborted",
                    endpoint=self._url(job.id),
                )
                timeout.job = aborted or job
                raise timeout
            self.sleep(min(next(delays), left))
            job = self.info(job.id)
        if job.state != "JobComplete":
            failed = BulkJobFailed(
                f"bulk query job {job.id} ended {job.state}: {job.error_message or 'no message'}",
                endpoint=self._url(job.id),
            )
            failed.job = job
            raise failed
        return job

    def pages(self, job: BulkJob) -> Iterator[CsvPage]:
        """The result pages of a completed job, in order.

        The next page is requested (in a second thread) as soon as the current one has
        arrived, so the CRM prepares it while the current one is consumed; at most two
        pages are held.
        """
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"bulk-{job.id}") as pool:
            pending = pool.submit(self.page, job.id, None)
            while True:
                page = pending.result()
                if page.locator is not None:
                    pending = pool.submit(self.page, job.id, page.locator)
                yield page
                if page.locator is None:
                    return

    def finish(self, job: BulkJob) -> None:
        """Delete ``job`` (aborting it first unless it is known to have ended).

        Failures are only logged: a job left behind expires in the CRM after 7 days.
        """
        if not job.terminal:
            self._abort_quietly(job.id)  # it may have ended meanwhile: delete anyway
        try:
            self.delete(job.id)
        except CrmError as exc:
            logger.warning("could not delete bulk query job %s: %s", job.id, exc)

    def _abort_quietly(self, job_id: str) -> BulkJob | None:
        try:
            return self.abort(job_id)
        except CrmError as exc:
            logger.warning("could not abort bulk query job %s: %s", job_id, exc)
            return None
