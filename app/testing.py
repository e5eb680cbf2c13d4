"""Drive the app in-process: its real lifespan, and an httpx client over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from app.api.state import State
from app.core.config import Settings


def isolated_settings(database_url: str, secret_key: str, **overrides: Any) -> Settings:
    """Settings for tests and benchmarks: embedded backends whatever the environment holds,
    cheap password hashing, no scheduler, and no `.env` file."""
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "secret_key": secret_key,
        "password_hash_time_cost": 1,
        "password_hash_memory_kib": 8,
        "scheduler_enabled": False,
        # Tests of the limits turn them on; the others and the benchmarks must not meet them.
        "rate_limit_enabled": False,
        "embedding_backend": "local",
        "vector_store": "local",
        "llm_backend": "extractive",
        "huggingface_api_key": None,
        "pinecone_api_key": None,
        **overrides,
    }
    return Settings(_env_file=None, **values)


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
