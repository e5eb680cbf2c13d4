"""Request ids: the caller's `X-Request-ID` when it is well-formed, a new uuid4 otherwise;
returned in the response and readable by every log record written while the request runs
(app/core/logs.py), upstream calls included."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
_HEADER_KEY = REQUEST_ID_HEADER.lower().encode("latin-1")
# What proxies and tracing systems send (uuids, hex, dotted ids), short enough for a log line.
_VALID = re.compile(r"[A-Za-z0-9._-]{1,128}")

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served in this context, if any."""
    return _request_id.get()


@contextmanager
def bound_request_id(request_id: str | None) -> Iterator[None]:
    """Runs the block as part of request `request_id`: for work a request hands to a task that
    did not inherit its context (the MCP SDK runs tools in its own task group)."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


def accept_request_id(value: str | None) -> str:
    """`value` when it is a safe id, else a new one: a header is never copied into logs as is."""
    if value is not None and _VALID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Sets the request id for the request's context and adds it to the response headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == _HEADER_KEY), None)
        request_id = accept_request_id(given.decode("latin-1") if given is not None else None)
        token = _request_id.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _request_id.reset(token)


def install_request_id(app: FastAPI) -> None:
    """Wrap the whole middleware stack (call after `app.api.middleware.install_edge`), so 500s, CORS
    rejections and body-limit 413s carry the id too, and their log lines have it."""
    build: Callable[[], ASGIApp] = app.build_middleware_stack

    def build_with_request_id() -> ASGIApp:
        return RequestIdMiddleware(build())

    app.build_middleware_stack = build_with_request_id  # type: ignore[method-assign]
