"""Drive the app in-process: its real lifespan, and an httpx client over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import httpx
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from app.lifespan import State


@asynccontextmanager
async def running_app(
    app: FastAPI, *, raise_app_exceptions: bool = True
) -> AsyncIterator[tuple[httpx.AsyncClient, State]]:
    """Run the lifespan and yield a client whose requests see its state, as under uvicorn."""
    async with app.router.lifespan_context(app) as lifespan_state:
        state = cast(State, lifespan_state)

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            # uvicorn copies the lifespan state into every request scope; so do we.
            await app({**scope, "state": dict(state)}, receive, send)

        transport = httpx.ASGITransport(app=with_state, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client, state
