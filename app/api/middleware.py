"""The HTTP edge: security headers and CORS on every response (500s included), `Allow`
headers that name every method a path has, ROOT_PATH when the server sets none, and the one
check that request text is valid Unicode before any route, dependency or limiter reads it."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Mount, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.config import Settings
from app.core.validation import (
    Location,
    Problem,
    first_problem,
    is_json_media_type,
    may_hold_problem_escape,
)

SECURITY_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Only framing is restricted: a wider policy would have to allow Swagger UI's inline script.
    "Content-Security-Policy": "frame-ancestors 'none'",
}
# The methods cross-origin pages may use, and those an `Allow` header is built from.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
CORS_REQUEST_HEADERS = ("Authorization", "Content-Type", "X-Request-ID", "Last-Event-ID")
# Response headers a page may read besides the CORS-safelisted ones.
CORS_EXPOSED_HEADERS = ("Retry-After", "X-Request-ID", "WWW-Authenticate")


class SecurityHeadersMiddleware:
    """Adds `SECURITY_HEADERS` to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class AllowedMethodsMiddleware:
    """Answers `OPTIONS` and completes 405s with every method of the path.

    Starlette stops at the first route whose path matches, so a path served by several routes
    (GET and POST /api/documents/) would otherwise advertise only the first route's methods.
    """

    def __init__(self, app: ASGIApp, router: Router) -> None:
        self.app = app
        self.router = router

    def allowed_methods(self, scope: Scope) -> set[str]:
        # Probing through the public `matches` works for FastAPI's included routers too, whose
        # routes are not flattened into `router.routes`.
        methods = {
            method
            for method in HTTP_METHODS
            for route in self.router.routes
            if not isinstance(route, Mount)
            and route.matches({**scope, "method": method})[0] is Match.FULL
        }
        return (methods | {"OPTIONS"}) if methods else methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            methods = self.allowed_methods(scope)
            if methods:
                response = Response(status_code=204, headers={"Allow": _allow(methods)})
                await response(scope, receive, send)
                return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                methods = self.allowed_methods(scope)
                if methods:
                    MutableHeaders(scope=message)["Allow"] = _allow(methods)
            await send(message)

        await self.app(scope, receive, send_with_allow)


class RootPathMiddleware:
    """Applies ROOT_PATH when the server gave no root path (`uvicorn app.main:app` without
    `--root-path`): routes still match with or without the prefix in the path."""

    def __init__(self, app: ASGIApp, root_path: str) -> None:
        self.app = app
        self.root_path = root_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not scope.get("root_path"):
            scope = {**scope, "root_path": self.root_path}
        await self.app(scope, receive, send)


MESSAGES: dict[Problem, str] = {
    "unicode": (
        "Text must be valid Unicode (no lone UTF-16 surrogate \\ud800-\\udfff, no bytes that "
        "are not UTF-8)"
    ),
    "nul": "Text must not contain NUL (\\u0000) characters",
}
URLENCODED = "application/x-www-form-urlencoded"
Refusal = tuple[Location, Problem]


def _decoded(encoded: bytes) -> str | None:
    try:
        return unquote_to_bytes(encoded.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _refused_pair(encoded: bytes, section: str, *, nul: bool) -> Refusal | None:
    """The first name=value pair of a query string or urlencoded form whose percent-escapes
    are not UTF-8 (Starlette would silently turn them into U+FFFD), or, with `nul`, that holds
    a NUL; None if every pair is fine."""
    for index, pair in enumerate(encoded.split(b"&")):
        raw_name, _, raw_value = pair.partition(b"=")
        name, value = _decoded(raw_name), _decoded(raw_value)
        label: str | int = index if name is None else name
        if name is None or value is None:
            return (section, label), "unicode"
        if nul and ("\x00" in name or "\x00" in value):
            return (section, label), "nul"
    return None


def _refused_json(body: bytes) -> Refusal | None:
    """Where a JSON body holds text that is not valid Unicode or holds a NUL, or None (also for
    a body that is not JSON at all: FastAPI answers that itself)."""
    try:
        text = body.decode(json.detect_encoding(body))
    except UnicodeDecodeError:
        try:  # surrogates as raw bytes (CESU-8), which json.loads would let through
            body.decode(json.detect_encoding(body), "surrogatepass")
        except UnicodeDecodeError:
            return None  # not text at all: FastAPI's 400
        return ("body",), "unicode"
    if not may_hold_problem_escape(text):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return first_problem(value, ("body",))


class UnicodeEdgeMiddleware:
    """Refuses request text no later layer can take, once, at the edge: JSON bodies (every
    spelling FastAPI parses as JSON) holding a lone surrogate or a NUL (PostgreSQL cannot store
    it; every stored field already refused it, so no valid request is lost), query strings
    holding either or escapes that are not UTF-8, and urlencoded forms whose escapes are not
    UTF-8 (a NUL there stays the route's business: the OAuth2 form answers 401). Answered by
    the app's validation handler: a 422 in our shape, a 400 in OpenAI's under /v1. Multipart
    fields need no check: Starlette decodes them strictly (falling back to Latin-1), so they
    never hold a surrogate, and uploads strip NUL from their text.

    Inside BodyLimit: the JSON or form body it buffers is already bounded."""

    def __init__(self, app: ASGIApp, *, handlers: Mapping[Any, Callable[..., Any]]) -> None:
        self.app = app
        self.handlers = handlers  # the app's own dict: handlers wrapped later are seen

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, refusal: Refusal) -> None:
        loc, problem = refusal
        exc = RequestValidationError(
            [{"loc": loc, "msg": MESSAGES[problem], "type": f"string_{problem}"}]
        )
        response: Response = await self.handlers[RequestValidationError](Request(scope), exc)
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query: bytes = scope.get("query_string", b"")
        if query and (refusal := _refused_pair(query, "query", nul=True)) is not None:
            await self._refuse(scope, receive, send, refusal)
            return
        content_type = Headers(scope=scope).get("content-type")
        is_json = is_json_media_type(content_type)
        is_urlencoded = (content_type or "").split(";")[0].strip().lower() == URLENCODED
        if not (is_json or is_urlencoded):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        disconnected: Message | None = None
        while more:
            message = await receive()
            if message["type"] != "http.request":
                disconnected = message
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        found = _refused_json(body) if is_json else _refused_pair(body, "body", nul=False)
        if found is not None and disconnected is None:
            await self._refuse(scope, receive, send, found)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                if disconnected is not None:
                    return disconnected
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _allow(methods: set[str]) -> str:
    return ", ".join(sorted(methods))


def install_edge(app: FastAPI, settings: Settings) -> None:
    """Wrap the app's whole middleware stack: Starlette's ServerErrorMiddleware (which renders
    500s) is always the outermost middleware `add_middleware` can reach, so CORS added that way
    would leave 500s, and anything a middleware rejects, without CORS headers."""
    build: Callable[[], ASGIApp] = app.build_middleware_stack

    def build_edge_stack() -> ASGIApp:
        inner = AllowedMethodsMiddleware(build(), app.router)
        cors = CORSMiddleware(
            inner,
            allow_origins=settings.cors_origins,
            allow_origin_regex=settings.cors_origin_regex or None,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=HTTP_METHODS,
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            max_age=settings.cors_max_age_seconds,
        )
        edge = SecurityHeadersMiddleware(cors)
        return RootPathMiddleware(edge, settings.root_path) if settings.root_path else edge

    app.build_middleware_stack = build_edge_stack  # type: ignore[method-assign]
