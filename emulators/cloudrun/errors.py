"""Google API errors as the REST transport expects them (`{"error": {code, message, status}}`)."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(self, http: int, status: str, message: str) -> None:
        super().__init__(message)
        self.http = http
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.http, "message": self.message, "status": self.status}}


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", message)


def exists(message: str) -> ApiError:
    return ApiError(409, "ALREADY_EXISTS", message)
