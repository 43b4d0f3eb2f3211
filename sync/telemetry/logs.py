"""Logging: plain text or one JSON object a line, with the ids of the work being done.

``BILLING_SYNC_LOG_FORMAT=json`` writes each record as a JSON object (python-json-logger)
with ``time``, ``level``, ``logger``, ``message`` and, where they apply, ``mapping``,
``pass_id``, ``change_set_id`` and ``request_id``: the code doing that work binds them
with :func:`log_context` / :func:`bind`, and every record logged inside carries them.

Whatever the format, :class:`RedactingFilter` rewrites messages before they are written:
session ids, bearer tokens, ``password=``/``token=``-style values and anything shaped
like a card number never reach a log.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTEXT_FIELDS: tuple[str, ...] = ("mapping", "pass_id", "change_set_id", "request_id")

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "billing_sync_log_context", default=_EMPTY
)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Records logged inside carry ``fields``; on exit the previous fields come back.

    Fields bound with :func:`bind` inside the block are dropped on exit too.
    """
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: Any) -> None:
    """Add ``fields`` to the current context (until the enclosing :func:`log_context` ends)."""
    _context.set({**_context.get(), **fields})


def current() -> Mapping[str, Any]:
    """The fields bound now."""
    return _context.get()


class ContextFilter(logging.Filter):
    """Copies the bound fields onto each record (an explicit ``extra=`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A Salesforce session id: the org id, "!", then the secret part.
    (re.compile(r"\b00D[A-Za-z0-9]{12,15}![A-Za-z0-9._-]+"), "[session id]"),
    (re.compile(r"(?i)\b(Bearer|OAuth|Basic)\s+[A-Za-z0-9._~+/=!-]{8,}"), r"\1 [redacted]"),
    (
        re.compile(
            r"(?i)\b(password|passwd|security_token|client_secret|secret|access_token|"
            r"refresh_token|session_?id|token|cvc|cvv)(\"?'?\s*[:=]\s*\"?'?)[^\s&\"',;]+"
        ),
        r"\1\2[redacted]",
    ),
)
# 13 to 19 digits, optionally grouped by spaces or dashes, passing the Luhn check.
_CARD = re.compile(r"(?<![\w.])\d(?:[ -]?\d){12,18}(?![\w.])")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return "[card number]" if _luhn(digits) else match.group(0)


def redact(text: str) -> str:
    """``text`` with secrets and card numbers replaced."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return _CARD.sub(_card, text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message through :func:`redact`.

    Tracebacks are redacted by the formatters of :func:`formatter`.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, ()
        return True


class _TextFormatter(logging.Formatter):
    def formatException(self, ei: Any) -> str:
        return redact(super().formatException(ei))


class _JsonFormatter(JsonFormatter):
    def formatException(self, ei: Any) -> str:
        text = super().formatException(ei)
        return redact(text if isinstance(text, str) else "\n".join(text))


def json_formatter() -> logging.Formatter:
    """One JSON object a line: time, level, logger, message, bound ids, extras."""
    return _JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        json_ensure_ascii=False,
    )


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of ``log_format`` (``text`` or ``json``)."""
    return json_formatter() if log_format == "json" else _TextFormatter(TEXT_FORMAT)


def install(handler: logging.Handler, log_format: str) -> None:
    """Give ``handler`` the format and the context and redaction filters."""
    handler.setFormatter(formatter(log_format))
    for kind in (ContextFilter, RedactingFilter):
        if not any(isinstance(f, kind) for f in handler.filters):
            handler.addFilter(kind())


def configure(level: int, log_format: str = "text") -> None:
    """Log to stderr at ``level`` in ``log_format`` (the CLI's setup)."""
    handler = logging.StreamHandler(sys.stderr)
    install(handler, log_format)
    # Without force: a host that configured logging already (a test runner) keeps its own.
    logging.basicConfig(level=level, handlers=[handler])
