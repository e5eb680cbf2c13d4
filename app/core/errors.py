"""The exception hierarchy and the one JSON error shape: `{"error": code, "detail": message}`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    error: str
    detail: Any = None


class AppError(Exception):
    """Base of every error the API renders; subclasses fix the status and code."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    default_detail: ClassVar[str] = "Bad request."

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        self.detail = detail or self.default_detail
        self.headers = headers
        super().__init__(self.detail)


class MalformedBody(AppError):
    """Documents the 400 that FastAPI returns for a body it cannot decode (e.g. not UTF-8)."""

    status_code = 400
    code = "bad_request"
    default_detail = "There was an error parsing the body"


class NotAuthenticated(AppError):
    status_code = 401
    code = "not_authenticated"
    default_detail = "Missing, invalid or expired credentials."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class InvalidCredentials(NotAuthenticated):
    code = "invalid_credentials"
    default_detail = "Incorrect email or password."


class PermissionDenied(AppError):
    status_code = 403
    code = "permission_denied"
    default_detail = "You are not allowed to do this."


class NotFound(AppError):
    status_code = 404
    code = "not_found"
    default_detail = "Not found."


class Conflict(AppError):
    status_code = 409
    code = "conflict"
    default_detail = "Conflict."


class EmailTaken(Conflict):
    code = "email_taken"
    default_detail = "An account with this email already exists."


class QuotaExceeded(AppError):
    status_code = 403
    code = "quota_exceeded"
    default_detail = "This would exceed your quota."


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"
    default_detail = "The upload is too large."


class UnsupportedMediaType(AppError):
    status_code = 415
    code = "unsupported_media_type"
    default_detail = "This file type is not supported."


class InvalidInput(AppError):
    status_code = 422
    code = "invalid_input"
    default_detail = "The input is not valid."


class ServiceBusy(AppError):
    """Our own capacity, not an upstream's, is exhausted for the moment."""

    status_code = 503
    code = "busy"
    default_detail = "The service is busy; try again in a moment."

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class DatabaseUnavailable(AppError):
    """Our database is unreachable, overloaded or locked; retrying later may succeed."""

    status_code = 503
    code = "database_unavailable"
    default_detail = "The database is unavailable; try again shortly."

    def __init__(self, detail: str | None = None, *, retry_after: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class UpstreamError(AppError):
    """An AI backend (embedder, vector store, LLM) failed; never raised for our own bugs."""

    status_code = 502
    code = "upstream_error"
    default_detail = "The AI backend returned an invalid answer."


class UpstreamUnavailable(UpstreamError):
    status_code = 503
    code = "upstream_unavailable"
    default_detail = "The AI backend is unavailable or rate limited. Try again later."

    def __init__(self, detail: str | None = None, *, retry_after: float | None = None) -> None:
        headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after else None
        super().__init__(detail, headers=headers)
        self.retry_after = retry_after


class UpstreamTimeout(UpstreamError):
    status_code = 504
    code = "upstream_timeout"
    default_detail = "The AI backend did not answer in time."


def error_responses(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting the errors a route can return."""
    out: dict[int | str, dict[str, Any]] = {}
    for err in errors:
        entry = out.setdefault(err.status_code, {"model": ErrorBody, "description": ""})
        codes = [c for c in entry["description"].split(", ") if c]
        entry["description"] = ", ".join([*codes, err.code])
    return out


def _render(
    status: int, code: str, detail: Any, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content=jsonable_encoder(ErrorBody(error=code, detail=detail)),
        headers=headers,
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


# SQLite reports contention and an unreadable file as OperationalError, like its schema
# errors ("no such table"); only these mean "try again later".
_SQLITE_OUTAGES = ("database is locked", "database table is locked", "unable to open database")


def is_outage(exc: BaseException) -> bool:
    """True when a database error means the database is unreachable, overloaded or locked."""
    if isinstance(exc, sqlalchemy.exc.DisconnectionError | sqlalchemy.exc.TimeoutError):
        return True
    if not isinstance(exc, sqlalchemy.exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if "sqlite" in type(exc.orig).__module__:
        return any(text in str(exc.orig) for text in _SQLITE_OUTAGES)
    # PostgreSQL (asyncpg): OperationalError and InterfaceError are connection failures.
    return isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError)


def install_error_handlers(app: FastAPI) -> None:
    async def app_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return _render(exc.status_code, exc.code, exc.detail, exc.headers)

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # Never echo raw input back (it may be a password); keep location, message and type.
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return _render(422, "validation_error", errors)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return _render(exc.status_code, code, exc.detail, exc.headers)

    async def unhandled(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("Unhandled error on %s %s", request.method, request.url.path)
        return _render(500, "internal_error", "Internal server error.")

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        if not is_outage(exc):  # e.g. a missing table: our bug, not an outage
            return await unhandled(request, exc)
        # Not the message: it holds the SQL. The kind is enough to see an outage in the logs.
        logger.warning(
            "database unavailable on %s %s: %s",
            request.method,
            request.url.path,
            type(exc).__name__,
        )
        unavailable = DatabaseUnavailable()
        return _render(503, unavailable.code, unavailable.detail, unavailable.headers)

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    # Connection lost, server gone, SQLite locked past its busy timeout, no pooled connection
    # in time: the database, not the request, is at fault.
    for kind in (
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.InterfaceError,
        sqlalchemy.exc.DisconnectionError,
        sqlalchemy.exc.TimeoutError,
    ):
        app.add_exception_handler(kind, database_error)
    app.add_exception_handler(Exception, unhandled)


class InternalErrorMiddleware:
    """Renders an unhandled exception as the app's JSON 500 inside the app, the innermost
    middleware: Starlette's ServerErrorMiddleware would render it too, but then re-raise it to
    the server, which closes the client's keep-alive connection. An exception after the
    response started (a stream cut mid-body) still propagates: nothing else can be sent."""

    def __init__(self, app: ASGIApp, *, handlers: Mapping[Any, Callable[..., Any]]) -> None:
        self.app = app
        self.handlers = handlers  # the app's own dict: the /v1 wrapper installed later is seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            response: Response = await self.handlers[Exception](Request(scope), exc)
            await response(scope, receive, send)
