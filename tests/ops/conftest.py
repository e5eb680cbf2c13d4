"""Fixtures of the operations tests: clients seen from a chosen peer address, and the real
Redis on 127.0.0.1:6379 (`.ci/run` starts it) under a key prefix of each test's own."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from app.api.state import State
from app.main import create_app
from tests.conftest import make_settings

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


class PeerApp:
    """A running app (its real lifespan) and clients that reach it from any peer address."""

    def __init__(self, app: FastAPI, state: State) -> None:
        self.app = app
        self.state = state

    def client(self, peer: str = "127.0.0.1") -> httpx.AsyncClient:
        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            await self.app({**scope, "state": dict(self.state)}, receive, send)

        transport = httpx.ASGITransport(app=with_state, client=(peer, 40_000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")


PeerAppFactory = Callable[..., AbstractAsyncContextManager[PeerApp]]


@pytest.fixture
def peer_app(database_url: str) -> PeerAppFactory:
    """`async with peer_app(**setting_overrides) as running: running.client("203.0.113.7")`"""

    @asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[PeerApp]:
        app = create_app(make_settings(database_url, **overrides))
        async with app.router.lifespan_context(app) as lifespan_state:
            yield PeerApp(app, cast(State, lifespan_state))

    return factory


AppClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def app_client(peer_app: PeerAppFactory) -> AppClientFactory:
    """`async with app_client("203.0.113.7", **setting_overrides) as client: ...`"""

    @asynccontextmanager
    async def factory(
        peer: str = "127.0.0.1", **overrides: Any
    ) -> AsyncIterator[httpx.AsyncClient]:
        async with peer_app(**overrides) as running, running.client(peer) as client:
            yield client

    return factory


def _redis_up() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def redis_url() -> str:
    if not _redis_up():
        pytest.skip(
            f"SKIPPED: no Redis on {REDIS_HOST}:{REDIS_PORT} (.ci/run starts one: "
            "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '')"
        )
    return REDIS_URL


@pytest.fixture
def key_prefix() -> str:
    """A Redis key prefix no other test (or earlier run) uses."""
    return f"test-{uuid.uuid4().hex}"


async def signup_login(
    client: httpx.AsyncClient, email: str = "ada@example.com", password: str = "correct horse 1"
) -> dict[str, Any]:
    """Sign up and log in; the token pair."""
    body = {"email": email, "username": email.split("@")[0], "password": password}
    assert (await client.post("/api/signup/", json=body)).status_code == 201
    response = await client.post("/api/login/", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
