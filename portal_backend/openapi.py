"""What the OpenAPI description says about every API route: the error body, and which
statuses carry it.

Every error the API answers has Backstage's shape (``portal_backend.errors``); the models
here describe it, and ``ERROR_RESPONSES`` documents it on each router that
``create_app`` includes, so a client (and schemathesis, tests/api_contract) can check
each 4xx/5xx answer against it. The bearer token each route needs is declared where the
routes ask for the caller (``portal_backend.deps``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from catalog.api_models import MAX_INT as CATALOG_MAX_INT


class ErrorDetailModel(BaseModel):
    path: str = Field(description="the field or parameter concerned, e.g. 'spec.owner'")
    message: str


class ErrorInfo(BaseModel):
    name: str = Field(description="InputError, NotFoundError, NotAllowedError, ...")
    message: str = Field(description="what went wrong and what to do about it")
    details: list[ErrorDetailModel] | None = Field(
        default=None, description="one entry per problem (every schema error of a form)"
    )


class RequestInfo(BaseModel):
    method: str
    url: str


class ResponseInfo(BaseModel):
    statusCode: int  # noqa: N815 - Backstage's field name


class ErrorResponse(BaseModel):
    """Backstage's error body."""

    error: ErrorInfo
    request: RequestInfo
    response: ResponseInfo


# The largest whole number an id, offset or cursor parameter takes: PostgreSQL's
# ``integer`` (ids) and what SQLite binds. A larger one was a 500 (an integer out of
# range in PostgreSQL, an OverflowError binding it in SQLite; found by schemathesis).
# Defined with the catalog's shared request models, which bound theirs by it too.
MAX_INT = CATALOG_MAX_INT

_MEANINGS = {
    400: "Bad input: the message and details name each field and the fix",
    401: "No, or an invalid, expired or revoked token",
    403: "The token's scope or the caller's groups do not allow this",
    404: "No such entity, task, location or token",
    409: "Conflicts with the current state (already exists, already running)",
    413: "The request body, or what it points to, is larger than allowed",
    422: "The request does not match this operation's schema",
    500: "An unexpected failure (details in the portal's log, never in the answer)",
    503: "A service the portal needs (database, task queue, cluster) is unavailable",
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": meaning}
    for status, meaning in _MEANINGS.items()
}
