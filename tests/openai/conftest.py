"""The live server: `chatbot serve` (the installed console script) as a subprocess on a free
127.0.0.1 port, on a fresh database, with the embedded defaults, as users run it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.core.db import create_engine
from app.models import Base
from tests.conftest import PG_URL, TEST_SECRET, make_settings

STARTUP_SECONDS = 180  # loading torch and the embedding model on a busy 2-core machine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _reset_postgres(url: str, *, recreate: bool) -> None:
    """On PostgreSQL the server migrates the test database itself: empty it first (the whole
    schema, whatever earlier migrations made), and give the other tests their create_all
    schema back afterwards."""
    engine = create_engine(make_settings(url))
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
            if recreate:
                await conn.run_sync(Base.metadata.create_all)
    finally:
        await engine.dispose()


async def run_sql(database_url: str, statement: str, **params: Any) -> None:
    """Change the live server's data behind its back (expire a key, disable a user)."""
    engine = create_engine(make_settings(database_url))
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement), params)
    finally:
        await engine.dispose()


@dataclass
class LiveServer:
    url: str
    database_url: str
    log_path: Path
    # Every key and token handed out, to check that none reaches the server's log.
    secrets: list[str] = field(default_factory=list)

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def login(self, email: str, password: str = "correct horse 1") -> str:
        """Sign up (if new) and log in; the JWT access token."""
        with httpx.Client(base_url=self.url, timeout=60) as client:
            client.post(
                "/api/signup/",
                json={"email": email, "username": email.split("@")[0], "password": password},
            )
            response = client.post("/api/login/", json={"email": email, "password": password})
            assert response.status_code == 200, response.text
            token = str(response.json()["access"])
        self.secrets.append(token)
        return token

    def create_key(self, token: str, name: str = "sdk", **body: Any) -> dict[str, Any]:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            response = client.post(
                "/api/keys/",
                json={"name": name, **body},
                headers={"Authorization": f"Bearer {token}"},
            )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        self.secrets.append(created["key"])
        return created

    def new_key(self, email: str) -> str:
        return str(self.create_key(self.login(email))["key"])

    def revoke(self, token: str, key_id: int) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            response = client.delete(
                f"/api/keys/{key_id}/", headers={"Authorization": f"Bearer {token}"}
            )
        assert response.status_code == 204, response.text

    def upload(self, credential: str, title: str, content: str) -> int:
        with httpx.Client(base_url=self.url, timeout=120) as client:
            response = client.post(
                "/api/documents/",
                json={"title": title, "content": content},
                headers={"Authorization": f"Bearer {credential}"},
            )
        assert response.status_code in (200, 201), response.text
        assert response.json()["status"] == "ready"
        return int(response.json()["id"])


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"chatbot serve exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)  # polling start-up, not timing a behaviour
    pytest.fail(f"chatbot serve did not become healthy:\n{log_path.read_text()}")


def start_server(workdir: Path, database_url: str, **settings: str) -> Iterator[LiveServer]:
    port = _free_port()
    log_path = workdir / "server.log"
    env = {
        # Only what the process needs: no developer .env, no API keys from the environment.
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "ENVIRONMENT": "test",
        "SECRET_KEY": TEST_SECRET,
        "DATABASE_URL": database_url,
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "8",
        "SCHEDULER_ENABLED": "false",
        "EMBEDDING_BACKEND": "local",
        "VECTOR_STORE": "local",
        "LLM_BACKEND": "extractive",
        "LOG_LEVEL": "INFO",
        # Every test logs in a user of its own, all from 127.0.0.1.
        "RATE_LIMIT_LOGIN_PER_IP_PER_MINUTE": "1000",
        **{name.upper(): value for name, value in settings.items()},
    }
    script = Path(sys.executable).parent / "chatbot"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own console script
            [str(script), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir,  # no .env or .secret_key from the checkout
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log_path)
        yield LiveServer(url=url, database_url=database_url, log_path=log_path)
    finally:
        process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def live_database(workdir: Path) -> Iterator[str]:
    """A fresh database for one live server: SQLite in `workdir`, or the emptied PostgreSQL
    test database (given back with its create_all schema afterwards)."""
    if not PG_URL:
        yield f"sqlite+aiosqlite:///{workdir / 'live.db'}"
        return
    asyncio.run(_reset_postgres(PG_URL, recreate=False))
    try:
        yield PG_URL
    finally:
        asyncio.run(_reset_postgres(PG_URL, recreate=True))


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server per test module (start-up loads the embedding model: seconds, not ms)."""
    workdir = tmp_path_factory.mktemp("live")
    with live_database(workdir) as url:
        yield from start_server(workdir, url)
