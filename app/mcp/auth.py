"""The bearer credential of an MCP request, resolved before the SDK reads a byte of the body."""

from __future__ import annotations

from typing import Any, cast

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.principal import resolve_principal
from app.api.state import State
from app.auth.principal import Principal
from app.core.errors import NotAuthenticated
from app.core.requestid import current_request_id

# Where the wrapper leaves what the tools need in the ASGI scope (the SDK hands tools the
# Starlette request, whose scope this is).
PRINCIPAL_KEY = "app.mcp.principal"
REQUEST_ID_KEY = "app.mcp.request_id"


def bearer_token(scope: Scope) -> str | None:
    """The credential of `Authorization: Bearer <credential>`, or None."""
    scheme, _, credential = Headers(scope=scope).get("authorization", "").partition(" ")
    credential = credential.strip()
    return credential if scheme.lower() == "bearer" and credential else None


class BearerAuth:
    """ASGI wrapper: resolves the request's bearer credential (an access token or an `sk-` API
    key) through `app.api.principal.resolve_principal`, exactly as the REST API does, and puts
    the `Principal` in the scope. A missing or refused credential raises `NotAuthenticated`,
    which the app renders as `401` with `WWW-Authenticate: Bearer`; the SDK never sees such a
    request. Every request is checked, not only a session's first: a revoked key stops at once.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        credential = bearer_token(scope)
        if credential is None:
            raise NotAuthenticated("Send Authorization: Bearer <API key or access token>.")
        principal = await resolve_principal(cast(State, scope["state"]), credential)
        # The tools run in the SDK's own task group, outside this request's context: the
        # request id travels with the scope so their log lines still carry it.
        scope = {**scope, PRINCIPAL_KEY: principal, REQUEST_ID_KEY: current_request_id()}
        await self.app(scope, receive, send)


def principal_of(scope: dict[str, Any]) -> Principal:
    principal = scope.get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal):  # only reachable if the wrapper was bypassed
        raise NotAuthenticated()
    return principal
