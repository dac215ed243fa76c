"""Errors the domain raises; the HTTP layer turns them into Backstage's error shape.

They live in the lowest layer so that catalog, scaffolder and SLA code can all raise
them without importing the web framework.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorDetail:
    """One problem, addressed by the path of the field it concerns."""

    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class PortalError(Exception):
    status_code = 500
    name = "Error"

    def __init__(self, message: str, details: list[ErrorDetail] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class InputError(PortalError):
    status_code = 400
    name = "InputError"


class AuthenticationError(PortalError):
    status_code = 401
    name = "AuthenticationError"


class NotAllowedError(PortalError):
    status_code = 403
    name = "NotAllowedError"


class NotFoundError(PortalError):
    status_code = 404
    name = "NotFoundError"


class ConflictError(PortalError):
    status_code = 409
    name = "ConflictError"


class PayloadTooLargeError(PortalError):
    status_code = 413
    name = "PayloadTooLargeError"


class UnprocessableError(PortalError):
    status_code = 422
    name = "InputError"


class ServiceUnavailableError(PortalError):
    status_code = 503
    name = "ServiceUnavailableError"
