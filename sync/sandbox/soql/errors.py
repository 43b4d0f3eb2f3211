"""The error a SOQL query fails with, worded like Salesforce's."""

from __future__ import annotations


def _position(text: str, pos: int) -> tuple[int, int, str]:
    """1-based row and column of ``pos`` in ``text``, and the text of that row."""
    pos = max(0, min(pos, len(text)))
    row = text.count("\n", 0, pos) + 1
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    return row, pos - line_start + 1, line


class SoqlError(Exception):
    """A query Salesforce would refuse.

    Attributes:
        error_code: ``MALFORMED_QUERY``, ``INVALID_FIELD``, ``INVALID_TYPE``,
            ``INVALID_QUERY_FILTER_OPERATOR`` or ``NUMBER_OUTSIDE_VALID_RANGE``.
        message: The text of the error; when the query text and the position are known,
            prefixed like Salesforce does with the query line, a caret under the
            offending token and ``ERROR at Row:R:Column:C``.
        detail: The message without that prefix.
    """

    def __init__(
        self, error_code: str, detail: str, *, text: str | None = None, pos: int | None = None
    ) -> None:
        if text is not None and pos is not None:
            row, column, line = _position(text, pos)
            message = (
                f"\n{line}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\n{detail}"
            )
        else:
            message = detail
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.error_code}: {self.message}"
