"""Request body ceilings, enforced while the body is read, before it is parsed and before the
route authenticates anyone: a 150 MB JSON body or a chunked multipart upload without a
Content-Length costs at most its limit in memory and on disk."""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a body passes its limit; rendered as our 413 by the error
    handlers (FastAPI re-raises HTTPExceptions met while reading a body)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.")


class BodyLimit:
    """ASGI middleware: `default` bytes for every request body, or the limit `overrides`
    gives for a `(method, path)`; path relative to the app's root path."""

    def __init__(
        self, app: ASGIApp, *, default: int, overrides: Mapping[tuple[str, str], int]
    ) -> None:
        self.app = app
        self.default = default
        self.overrides = dict(overrides)

    def limit_for(self, scope: Scope) -> int:
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        return self.overrides.get((scope["method"], path), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _reject(send, limit)  # known too big: not a byte is read
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await _reject(send, limit)


async def _reject(send: Send, limit: int) -> None:
    body = json.dumps(
        {"error": "payload_too_large", "detail": f"The request body is larger than {limit} bytes."}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            # The client may still be sending: tell it (and the proxy) to stop.
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
