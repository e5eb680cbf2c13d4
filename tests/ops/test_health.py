"""GET /healthz (alive, no I/O) and GET /readyz (database within a timeout, backends built)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from tests.ops.conftest import PeerAppFactory

ALL_OK = {
    "database": "ok",
    "embedder": "ok",
    "store": "ok",
    "generator": "ok",
    "pipeline": "ok",
    "documents": "ok",
}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: connections are refused


@pytest.fixture
async def black_hole() -> AsyncIterator[int]:
    """A port that accepts connections and never answers (a firewalled database)."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    yield port
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_healthz_up_ok_without_touching_the_database(peer_app: PeerAppFactory) -> None:
    async with peer_app() as running, running.client() as client:
        engine = running.state["engine"]
        await engine.dispose()
        running.state["engine"] = create_async_engine(
            f"postgresql+asyncpg://nobody@127.0.0.1:{_closed_port()}/none"
        )
        try:
            response = await client.get("/healthz")
        finally:
            await running.state["engine"].dispose()
            running.state["engine"] = engine

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_all_up_200_with_every_check(peer_app: PeerAppFactory) -> None:
    async with peer_app() as running, running.client() as client:
        response = await client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": ALL_OK, "failed": []}


async def test_readyz_database_refusing_503_names_database(peer_app: PeerAppFactory) -> None:
    async with peer_app() as running, running.client() as client:
        engine = running.state["engine"]
        running.state["engine"] = create_async_engine(
            f"postgresql+asyncpg://nobody@127.0.0.1:{_closed_port()}/none"
        )
        try:
            response = await client.get("/readyz")
            health = await client.get("/healthz")
        finally:
            await running.state["engine"].dispose()
            running.state["engine"] = engine
        recovered = await client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {**ALL_OK, "database": "unreachable"},
        "failed": ["database"],
    }
    assert response.headers["Retry-After"] == "5"
    assert health.status_code == 200
    assert recovered.status_code == 200


async def test_readyz_database_black_holed_503_within_timeout(
    peer_app: PeerAppFactory, black_hole: int
) -> None:
    async with peer_app(readiness_timeout_seconds=0.5) as running, running.client() as client:
        engine = running.state["engine"]
        running.state["engine"] = create_async_engine(
            f"postgresql+asyncpg://nobody@127.0.0.1:{black_hole}/none"
        )
        try:
            started = time.monotonic()
            response = await client.get("/readyz")
            elapsed = time.monotonic() - started
        finally:
            await running.state["engine"].dispose()
            running.state["engine"] = engine

    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "timeout"
    assert response.json()["failed"] == ["database"]
    # The 0.5 s readiness timeout, not asyncpg's 60 s connect timeout (this engine sets none);
    # the margin is for a loaded machine (3.07 s seen once in a full PostgreSQL pass).
    assert elapsed < 5


async def test_readyz_backend_missing_503_names_it(peer_app: PeerAppFactory) -> None:
    async with peer_app() as running, running.client() as client:
        values = cast(dict[str, Any], running.state)
        generator = values.pop("generator")
        try:
            response = await client.get("/readyz")
        finally:
            values["generator"] = generator

    assert response.status_code == 503
    assert response.json()["failed"] == ["generator"]
    assert response.json()["checks"]["generator"] == "missing"


async def test_health_unchanged(peer_app: PeerAppFactory) -> None:
    async with peer_app() as running, running.client() as client:
        response = await client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_openapi_lists_probes_not_metrics(peer_app: PeerAppFactory) -> None:
    async with peer_app() as running, running.client() as client:
        paths = (await client.get("/openapi.json")).json()["paths"]

    assert {"/healthz", "/readyz", "/health"} <= set(paths)
    assert "/metrics" not in paths
    assert "503" in paths["/readyz"]["get"]["responses"]
