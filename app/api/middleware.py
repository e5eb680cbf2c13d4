"""The HTTP edge: security headers and CORS on every response (500s included), `Allow`
headers that name every method a path has, and ROOT_PATH when the server sets none."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.routing import Match, Mount, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.config import Settings

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
