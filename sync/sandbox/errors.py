"""Salesforce-shaped API errors raised inside the sandbox and their HTTP answers."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error the REST API answers with ``[{"message", "errorCode", "fields"}]``."""

    def __init__(
        self, status: int, error_code: str, message: str, fields: list[str] | None = None
    ) -> None:
        super().__init__(f"{error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.fields = fields or []

    def body(self) -> list[dict[str, Any]]:
        """The REST error body."""
        item: dict[str, Any] = {"message": self.message, "errorCode": self.error_code}
        if self.fields:
            item["fields"] = self.fields
        return [item]

    def record_error(self) -> dict[str, Any]:
        """The per-record error of sObject Collections (``statusCode``, not ``errorCode``)."""
        return {"statusCode": self.error_code, "message": self.message, "fields": self.fields}


def not_found() -> ApiError:
    """404 for a resource that does not exist."""
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")


def entity_deleted() -> ApiError:
    """404 for a record in the recycle bin."""
    return ApiError(404, "ENTITY_IS_DELETED", "entity is deleted")


def invalid_session() -> ApiError:
    """401 for a missing, unknown or expired session."""
    return ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")


def limit_exceeded() -> ApiError:
    """403 once the org's daily API request limit is used up."""
    return ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")


def json_parser_error(detail: str) -> ApiError:
    """400 for a request body that is not JSON."""
    return ApiError(400, "JSON_PARSER_ERROR", detail)


def method_not_allowed(method: str, allowed: list[str]) -> ApiError:
    """405 with the methods the resource accepts."""
    return ApiError(
        405,
        "METHOD_NOT_ALLOWED",
        f"HTTP Method '{method}' not allowed. Allowed are {','.join(allowed)}",
    )
