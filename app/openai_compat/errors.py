"""OpenAI's error shape for every response under /v1, so SDKs raise their usual exceptions.

`{"error": {"message", "type", "param", "code"}}` with OpenAI's status codes: the SDKs pick the
exception class from the status (400 BadRequestError, 401 AuthenticationError, 404
NotFoundError, 429 RateLimitError, 5xx InternalServerError) and show `message`.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.core.errors import AppError, NotFound

PREFIX = "/v1"


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class InvalidRequest(AppError):
    """A 400 naming the offending request field, as OpenAI's `param`."""

    status_code = 400
    code = "invalid_request"
    default_detail = "The request is not valid."

    def __init__(self, detail: str | None = None, *, param: str | None = None) -> None:
        super().__init__(detail)
        self.param = param


class ModelNotFound(NotFound):
    code = "model_not_found"

    def __init__(self, model: str, *, param: str = "model") -> None:
        # The name is the caller's own input, cut short; it is not a secret.
        super().__init__(f"The model `{model[:100]}` does not exist.")
        self.param = param


def _type_for(status: int) -> str:
    if status == 401:
        return "invalid_request_error"  # what OpenAI itself answers for a bad key
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def error_detail(status: int, message: str, code: str | None, param: str | None) -> ErrorDetail:
    if status == 401:
        code = "invalid_api_key"
    return ErrorDetail(message=message, type=_type_for(status), param=param, code=code)


def _response(
    status: int,
    message: str,
    code: str | None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=error_detail(status, message, code, param))
    return JSONResponse(status_code=status, content=body.model_dump(), headers=headers)


def stream_error_event(exc: AppError) -> str:
    """An error after a stream started: the SDKs raise `APIError` on a `data: {"error"}`."""
    detail = error_detail(exc.status_code, str(exc.detail), exc.code, None)
    return f"data: {json.dumps({'error': detail.model_dump()}, ensure_ascii=False)}\n\n"


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def _param(loc: tuple[Any, ...] | list[Any]) -> str | None:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, str) and (part in _TYPE_TAGS or "[" in part or "(" in part):
            break  # pydantic names the union member here (`str`, `list[ContentPart]`)
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def render(exc: Exception, request: Request) -> Response | None:
    """OpenAI's rendering of our own errors; None for the rest (their handler answers)."""
    if isinstance(exc, AppError):
        status = 400 if exc.status_code == 422 else exc.status_code
        message = str(exc.detail)
        return _response(status, message, exc.code, getattr(exc, "param", None), exc.headers)
    if isinstance(exc, RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {}
        param = _param(first.get("loc", ()))
        # Never echo the input itself; the message names the field and the rule.
        message = str(first.get("msg", "Invalid request."))
        if param:
            message = f"{message}: {param}"
        return _response(400, message, str(first.get("type", "invalid_value")), param)
    if isinstance(exc, StarletteHTTPException):
        message = str(exc.detail)
        if exc.status_code in (404, 405):  # no such route: say which, as OpenAI does
            message = f"Invalid URL ({request.method} {request.url.path})"
        return _response(exc.status_code, message, None, None, exc.headers)
    return None


def translate(response: Response) -> Response:
    """Our `{"error": code, "detail": message}` body (a database outage, an unhandled error)
    in OpenAI's shape, with the same status and headers."""
    try:
        body = json.loads(bytes(getattr(response, "body", b"")))
    except ValueError:
        body = None
    code = body.get("error") if isinstance(body, dict) else None
    detail = body.get("detail") if isinstance(body, dict) else None
    message = detail if isinstance(detail, str) else "The request failed."
    headers = {
        name: value
        for name, value in response.headers.items()
        if name not in ("content-length", "content-type")
    }
    return _response(
        response.status_code, message, code if isinstance(code, str) else None, None, headers
    )


def _under_prefix(request: Request) -> bool:
    path: str = request.scope.get("path", "")
    root: str = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path == PREFIX or path.startswith(PREFIX + "/")


Handler = Callable[[Request, Exception], Any]


def install_openai_error_handlers(app: FastAPI) -> None:
    """Render errors under /v1 in OpenAI's shape; every other path keeps its handler.
    Wraps every handler registered so far: call after `app.core.errors.install_error_handlers`."""
    for key, fallback in list(app.exception_handlers.items()):

        def make(fallback: Handler) -> Callable[[Request, Exception], Any]:
            async def handle(request: Request, exc: Exception) -> Response:
                if _under_prefix(request) and (rendered := render(exc, request)) is not None:
                    return rendered
                result = fallback(request, exc)
                response: Response = await result if inspect.isawaitable(result) else result
                return translate(response) if _under_prefix(request) else response

            return handle

        app.add_exception_handler(key, make(fallback))
