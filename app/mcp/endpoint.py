"""`/mcp`: the SDK's Streamable HTTP transport behind our bearer authentication."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Receive, Scope, Send

from app.core.config import Settings
from app.core.errors import ServiceBusy
from app.mcp.auth import BearerAuth
from app.mcp.server import build_server

PATH = "/mcp"


class McpEndpoint:
    """The ASGI app served at `/mcp` (mounted by `create_app`, run by the lifespan).

    Stateless (no MCP session id): every POST carries its credential and is answered on its
    own, so any replica behind the proxy can serve any request, and a revoked key is refused
    on the next request. Responses are plain JSON rather than SSE, which any proxy passes
    through unbuffered. `running()` gives each lifespan a fresh SDK session manager (one can
    run only once), so the same app can be started again, as tests do.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server: MCPServer = build_server(settings)
        self._manager: StreamableHTTPSessionManager | None = None
        self._app = BearerAuth(self._handle)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self.server.streamable_http_app(
            streamable_http_path=PATH,
            stateless_http=True,
            json_response=True,
            max_request_body_size=self.settings.max_json_body_bytes,
            # The SDK's Host/Origin allow-list guards servers that trust whoever reaches them
            # (DNS rebinding against a local server without credentials). Every request here
            # must carry a bearer credential a rebinding page cannot have, browsers are governed
            # by CORS_ORIGINS, and behind a proxy the Host is the public name: off.
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        # Stateless, the SDK logs "Terminating session: None" at INFO after every request.
        quiet = logging.getLogger("mcp.server.streamable_http")
        quiet.setLevel(max(quiet.getEffectiveLevel(), logging.WARNING))
        manager = self.server.session_manager
        started, stop = asyncio.Event(), asyncio.Event()

        async def run() -> None:
            async with manager.run():
                self._manager = manager
                started.set()
                try:
                    await stop.wait()
                finally:
                    self._manager = None

        # The SDK's anyio task group must be entered and left by one task; a lifespan may be
        # entered by one task and left by another (test fixtures are), so it gets its own.
        task = asyncio.create_task(run(), name="mcp-session-manager")
        ready = asyncio.create_task(started.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():  # it failed to start: raise its error
            ready.cancel()
            task.result()
        try:
            yield
        finally:
            stop.set()
            await task

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._manager is None:  # a request racing start-up or shutdown
            raise ServiceBusy("The MCP server is not running.")
        await self._manager.handle_request(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)
